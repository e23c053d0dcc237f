#include <string.h>

#include "st.h"

void
st_rd_init(st_rd *rd, const void *p, size_t len)
{
	rd->p = p;
	rd->len = p ? len : 0;
	rd->off = 0;
	rd->bad = 0;
}

const uint8_t *
st_rd_take(st_rd *rd, size_t n)
{
	const uint8_t *q;

	if (rd->bad || n > rd->len - rd->off) {
		rd->bad = 1;
		return NULL;
	}
	q = rd->p + rd->off;
	rd->off += n;
	return q;
}

int
st_rd_u8(st_rd *rd, uint8_t *v)
{
	const uint8_t *q = st_rd_take(rd, 1);

	if (!q)
		return -1;
	*v = q[0];
	return 0;
}

int
st_rd_u16(st_rd *rd, uint16_t *v)
{
	const uint8_t *q = st_rd_take(rd, 2);

	if (!q)
		return -1;
	*v = (uint16_t)((q[0] << 8) | q[1]);
	return 0;
}

int
st_rd_u32(st_rd *rd, uint32_t *v)
{
	const uint8_t *q = st_rd_take(rd, 4);

	if (!q)
		return -1;
	*v = ((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16) | ((uint32_t)q[2] << 8) | q[3];
	return 0;
}

int
st_rd_lv16(st_rd *rd, const uint8_t **p, size_t *len)
{
	uint16_t n;
	const uint8_t *q;

	if (st_rd_u16(rd, &n) < 0 || !(q = st_rd_take(rd, n)))
		return -1;
	*p = q;
	*len = n;
	return 0;
}

size_t
st_rd_left(const st_rd *rd)
{
	return rd->bad ? 0 : rd->len - rd->off;
}

int
st_rd_done(const st_rd *rd)
{
	return (rd->bad || rd->off != rd->len) ? -1 : 0;
}

void
st_wr_init(st_wr *wr, void *p, size_t cap)
{
	wr->p = p;
	wr->cap = p ? cap : 0;
	wr->len = 0;
	wr->bad = 0;
}

uint8_t *
st_wr_reserve(st_wr *wr, size_t n)
{
	uint8_t *q;

	if (wr->bad || n > wr->cap - wr->len) {
		wr->bad = 1;
		return NULL;
	}
	q = wr->p + wr->len;
	wr->len += n;
	return q;
}

int
st_wr_u8(st_wr *wr, uint8_t v)
{
	uint8_t *q = st_wr_reserve(wr, 1);

	if (!q)
		return -1;
	q[0] = v;
	return 0;
}

int
st_wr_u16(st_wr *wr, uint16_t v)
{
	uint8_t *q = st_wr_reserve(wr, 2);

	if (!q)
		return -1;
	q[0] = (uint8_t)(v >> 8);
	q[1] = (uint8_t)v;
	return 0;
}

int
st_wr_u32(st_wr *wr, uint32_t v)
{
	uint8_t *q = st_wr_reserve(wr, 4);

	if (!q)
		return -1;
	q[0] = (uint8_t)(v >> 24);
	q[1] = (uint8_t)(v >> 16);
	q[2] = (uint8_t)(v >> 8);
	q[3] = (uint8_t)v;
	return 0;
}

int
st_wr_bytes(st_wr *wr, const void *p, size_t n)
{
	uint8_t *q = st_wr_reserve(wr, n);

	if (!q)
		return -1;
	if (n)
		memcpy(q, p, n);
	return 0;
}

int
st_wr_lv16(st_wr *wr, const void *p, size_t n)
{
	if (n > 0xffff) {
		wr->bad = 1;
		return -1;
	}
	if (st_wr_u16(wr, (uint16_t)n) < 0)
		return -1;
	return st_wr_bytes(wr, p, n);
}
