/* What the commands share when they talk to the operator. */
#ifndef STATION_CLI_H
#define STATION_CLI_H

#include <getopt.h>

#include "hsm.h"
#include "recipe.h"
#include "station.h"

/* Every error of a recipe load on stderr, one a line ("FILE:LINE:COL: key: message"). */
void cli_recipe_errors_print(const recipe_errors *errs);
/* Load the recipe a command works with.  When it does not load, its errors
 * go to stderr followed by "station CMD: recipe PATH has N errors: fix them
 * ('station recipe check PATH')", and the result is NULL. */
recipe *cli_recipe_load(const char *cmd, const char *path);

/* ---- the HSM user PIN: one set of options for every command that opens the HSM ---- */

enum { CLI_O_PIN_ENV = 0x1000, CLI_O_PIN_FILE, CLI_O_PIN_PROMPT };
/* In a command's struct option table. */
#define CLI_PIN_LONGOPTS                                            \
	{ "pin-env", required_argument, NULL, CLI_O_PIN_ENV },      \
	{ "pin-file", required_argument, NULL, CLI_O_PIN_FILE },    \
	{ "pin-prompt", no_argument, NULL, CLI_O_PIN_PROMPT }
/* In its usage text. */
#define CLI_PIN_SYNOPSIS "[--pin-env NAME | --pin-file PATH | --pin-prompt]"
#define CLI_PIN_HELP                                                                                  \
	"  --pin-env NAME        the HSM user PIN is in environment variable NAME\n"                    \
	"  --pin-file PATH       the HSM user PIN is the first line of PATH (mode 0600 or stricter)\n"  \
	"  --pin-prompt          ask for the HSM user PIN on the terminal\n"                            \
	"  The PIN source defaults to the recipe's hsm.pin, else $" HSM_PIN_ENV_DEFAULT "; a PIN is\n" \
	"  never taken from the command line.\n"

typedef struct cli_pin {
	int given;          /* a PIN option was on the command line */
	hsm_pin_source src; /* what it said */
} cli_pin;

/* Take getopt_long's answer c if it is a PIN option: 1 taken, 0 not a PIN
 * option, -1 a second PIN option (said on stderr for "station CMD"). */
int cli_pin_option(cli_pin *p, const char *cmd, int c, const char *arg);
/* The PIN source to open the HSM with: the command line's (p may be NULL),
 * else the recipe's hsm.pin (r may be NULL), else $STATION_HSM_PIN.  A
 * prompt asks on the terminal with cli_pin_prompt. */
void cli_pin_source(const cli_pin *p, const recipe *r, hsm_pin_source *out);
/* libhsm's prompt callback (hsm_pin_prompt_fn): asks on the controlling
 * terminal (/dev/tty), without echo. */
int cli_pin_prompt(void *arg, const char *token, char pin[HSM_PIN_MAX], st_err *err);
/* Who works at the station: given when not NULL, else $USER, else the
 * account's name (getpwuid), else "uid N": a journal never says "unknown". */
const char *cli_operator(const char *given);

/* The recipe signature gate for a command that loaded r itself (station_open
 * applies it otherwise): refuses with a message on stderr (-1) or warns about
 * a signature nothing checks (0). */
int cli_recipe_policy(const char *cmd, const recipe *r, int require_signed, const char *trust_pem);

/* What an operator must be told after station_open succeeded. */
void cli_station_warnings(const char *cmd, const station *st);

#endif
