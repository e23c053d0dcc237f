/* Open a jig by URI: the one place that knows every backend (tcp in
 * libjig-wire; serial and USB need libserialport and libusb, so they live in
 * libjig proper). */
#include <string.h>

#include "jig.h"
#include "transport-int.h"

int
jig_transport_open(const char *uri, jig_transport **out, st_err *err)
{
	jig_uri u;

	*out = NULL;
	if (strlen(uri) >= sizeof((*out)->uri))
		return st_err_set(err, ST_E_CONFIG, "jig URI \"%.40s...\": longer than %zu characters", uri,
		    sizeof((*out)->uri) - 1);
	if (jig_uri_parse(uri, &u, err) < 0)
		return -1;
	if (strcmp(u.scheme, "tcp") == 0)
		return jig_tcp_open(&u, uri, out, err);
	if (strcmp(u.scheme, "serial") == 0)
		return jig_serial_open(&u, uri, out, err);
	return jig_usb_open(&u, uri, out, err);
}
