/*
 * Reading CSV files of vectors: one vector per line, its values separated
 * by commas, each a decimal number ([+-]digits[.digits][e[+-]digits])
 * that strtof turns into a finite float32, spaces and tabs around a value
 * allowed. With an id column the first value of a line is its id, a
 * whole number 0 to 2^64 - 1. LF or CRLF line ends; lines of only spaces
 * and tabs are skipped; a UTF-8 byte order mark at the start is skipped.
 *
 * Opening reads the file once: the first line that is not blank is a
 * header, and skipped, if it is text (no control bytes but tab) that does
 * not parse as numbers; the first row then fixes the number of columns,
 * and the rest of the lines are only counted. Reading parses the rows
 * after the header, each checked in full. The file is read through a
 * buffer that holds at least one line (up to CSV_LINE_MAX), so its size
 * does not matter.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "edgesync/store_error.h"
#include "io_util.h"
#include "vecs_impl.h"

#define CSV_BUF	     (1u << 20)
#define CSV_LINE_MAX (8u << 20)

struct csv {
	char *buf;		/* cap + 1 bytes; buf[end] is '\0' */
	size_t cap, start, end; /* unread bytes are buf[start..end) */
	uint64_t off;		/* file offset of buf[end] */
	int eof;
	uint64_t line;	 /* lines taken so far */
	uint32_t fields; /* per row, the id included; 0 until known */
	int id_column;
	int header;	    /* the first line is one, whatever it holds */
	uint64_t data_off;  /* where the first row's line starts */
	uint64_t data_line; /* lines before it */
};

/* Reads more of the file into c->buf, growing it for a long line. */
static int csv_fill(struct es_vecs *v, struct csv *c)
{
	ssize_t r;

	if (c->start) {
		memmove(c->buf, c->buf + c->start, c->end - c->start);
		c->end -= c->start;
		c->start = 0;
	}
	if (c->end == c->cap) {
		size_t cap =
		    c->cap * 2 < CSV_LINE_MAX ? c->cap * 2 : CSV_LINE_MAX;
		char *buf;

		if (c->cap >= CSV_LINE_MAX) {
			v->loc.line = c->line + 1;
			return ES_E_CSV_LINE;
		}
		buf = realloc(c->buf, cap + 1);
		if (!buf)
			return -ENOMEM;
		c->buf = buf;
		c->cap = cap;
	}
	do
		r = pread(v->fd, c->buf + c->end, c->cap - c->end,
			  (off_t)c->off);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	if (r == 0)
		c->eof = 1;
	c->end += (size_t)r;
	c->off += (uint64_t)r;
	c->buf[c->end] = '\0';
	return 0;
}

static int is_blank(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return 0;
	return 1;
}

/*
 * The next line that is not blank, without its line end, in *line (valid
 * until the next call) and where it starts in *at; 1, 0 at the end, or a
 * negative code.
 */
static int csv_next(struct es_vecs *v, struct csv *c, char **line, size_t *len,
		    uint64_t *at)
{
	for (;;) {
		char *p = c->buf + c->start;
		char *nl = memchr(p, '\n', c->end - c->start);
		size_t n;
		int rc;

		if (!nl && !(c->eof && c->start < c->end)) {
			if (c->eof)
				return 0;
			rc = csv_fill(v, c);
			if (rc < 0)
				return rc;
			continue;
		}
		n = nl ? (size_t)(nl - p) : c->end - c->start;
		if (at)
			*at = c->off - (c->end - c->start);
		c->start += n + (nl ? 1 : 0);
		c->line++;
		if (n && p[n - 1] == '\r')
			n--;
		if (!is_blank(p, n)) {
			*line = p;
			*len = n;
			return 1;
		}
	}
}

static int is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static size_t skip_digits(const char *s, size_t i, size_t n)
{
	while (i < n && is_digit(s[i]))
		i++;
	return i;
}

/* Whether s[0..n) is word, in any case. */
static int is_word(const char *s, size_t n, const char *word)
{
	return n == strlen(word) && !strncasecmp(s, word, n);
}

/* Parses s[0..n), followed by a byte that is no part of a number. */
static int parse_float(const char *s, size_t n, float *out)
{
	size_t i = 0, mant;
	int saved = errno;
	char *end;
	float f;

	if (i < n && (s[i] == '+' || s[i] == '-'))
		i++;
	if (is_word(s + i, n - i, "nan") || is_word(s + i, n - i, "inf") ||
	    is_word(s + i, n - i, "infinity"))
		return ES_E_VECS_NONFINITE;
	mant = i;
	i = skip_digits(s, i, n);
	if (i < n && s[i] == '.')
		i = skip_digits(s, i + 1, n);
	if (i == mant || (i == mant + 1 && s[mant] == '.'))
		return ES_E_CSV_NUMBER; /* no digits */
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t exp;

		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		exp = i;
		i = skip_digits(s, i, n);
		if (i == exp)
			return ES_E_CSV_NUMBER;
	}
	if (i != n)
		return ES_E_CSV_NUMBER;
	errno = 0;
	f = strtof(s, &end);
	errno = saved;
	if (end != s + n)
		return ES_E_CSV_NUMBER;
	if (!isfinite(f))
		return ES_E_VECS_RANGE;
	*out = f;
	return 0;
}

static int parse_id(const char *s, size_t n, uint64_t *out)
{
	uint64_t x = 0;

	if (n == 0)
		return ES_E_CSV_ID;
	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (!is_digit(s[i]) || x > (UINT64_MAX - d) / 10)
			return ES_E_CSV_ID;
		x = x * 10 + d;
	}
	*out = x;
	return 0;
}

/*
 * Parses one line into dst (may be NULL) and *id; *fields is how many
 * columns it has. A column past c->fields (when known) or short of it is
 * ES_E_CSV_COLUMNS; v->loc.column says which column was wrong.
 */
/* The field of line p (len bytes) at *i: [*a, *b) without the blanks
 * around it; *i moves past its comma. 0 if it was the last field. */
static int next_field(const char *p, size_t len, size_t *i, size_t *a,
		      size_t *b)
{
	*a = *i;
	while (*i < len && p[*i] != ',')
		(*i)++;
	*b = *i;
	while (*a < *b && (p[*a] == ' ' || p[*a] == '\t'))
		(*a)++;
	while (*b > *a && (p[*b - 1] == ' ' || p[*b - 1] == '\t'))
		(*b)--;
	return *i < len ? ((*i)++, 1) : 0;
}

static int parse_row(struct es_vecs *v, struct csv *c, const char *p,
		     size_t len, float *dst, uint64_t *id, uint32_t *fields)
{
	uint32_t col = 0;
	uint64_t unused;
	size_t i = 0, a, b;
	int rc, more;

	for (;;) {
		more = next_field(p, len, &i, &a, &b);
		col++;
		if (c->fields && col > c->fields)
			rc = ES_E_CSV_COLUMNS;
		else if (col > ES_VECS_MAX_DIM + (uint32_t)c->id_column)
			rc = ES_E_VECS_DIM;
		else if (c->id_column && col == 1)
			rc = parse_id(p + a, b - a, id ? id : &unused);
		else if (dst)
			rc = parse_float(
			    p + a, b - a,
			    dst + (col - 1 - (uint32_t)c->id_column));
		else
			rc = parse_float(p + a, b - a, &(float){0});
		if (rc < 0) {
			v->loc.column = col;
			return rc;
		}
		if (!more)
			break;
	}
	if (c->fields && col != c->fields) {
		v->loc.column = col + 1;
		return ES_E_CSV_COLUMNS;
	}
	*fields = col;
	return 0;
}

static long csv_read(struct es_vecs *v, void *dst, uint64_t *ids, size_t n)
{
	struct csv *c = v->impl;
	float *out = dst;
	size_t done = 0;
	uint32_t fields;

	while (done < n) {
		char *line;
		size_t len;
		int rc = csv_next(v, c, &line, &len, NULL);

		if (rc == 0) /* the file was cut since it was opened */
			rc = ES_E_CSV_SHRUNK;
		if (rc > 0)
			rc = parse_row(v, c, line, len,
				       out + done * (size_t)v->dim,
				       ids ? ids + done : NULL, &fields);
		if (rc < 0) {
			if (rc <= ES_STORE_ERR_FIRST && !v->loc.line)
				v->loc.line = c->line;
			v->pos += done;
			return rc;
		}
		done++;
	}
	v->pos += done;
	return (long)done;
}

static void csv_fini(struct es_vecs *v)
{
	struct csv *c = v->impl;

	if (c)
		free(c->buf);
	free(c);
	v->impl = NULL;
}

static const struct vecs_ops csv_ops = {csv_read, csv_fini};

/*
 * Whether a first line that is not a row is a header: text (no control
 * bytes but tab) in which no field is a number. A row with a mistake in
 * it ("1,2,3.O", "1,,3", an id out of range) has numbers, and is
 * refused with its line and column instead of being skipped.
 */
static int is_header(const char *p, size_t len)
{
	size_t i = 0, a, b;
	int more;

	for (i = 0; i < len; i++)
		if (((unsigned char)p[i] < 0x20 && p[i] != '\t') ||
		    p[i] == 0x7f)
			return 0;
	i = 0;
	do {
		more = next_field(p, len, &i, &a, &b);
		if (b > a &&
		    parse_float(p + a, b - a, &(float){0}) != ES_E_CSV_NUMBER)
			return 0;
	} while (more);
	return 1;
}

/* The first row (after a header): the number of columns and where. */
static int csv_first_row(struct es_vecs *v, struct csv *c)
{
	uint32_t fields;
	uint64_t at;
	char *line;
	size_t len;
	int rc = csv_next(v, c, &line, &len, &at);

	if (rc == 0)
		return ES_E_VECS_EMPTY;
	if (rc < 0)
		return rc;
	rc = c->header ? ES_E_CSV_NUMBER
		       : parse_row(v, c, line, len, NULL, NULL, &fields);
	if (c->header || ((rc == ES_E_CSV_NUMBER || rc == ES_E_CSV_ID) &&
			  is_header(line, len))) {
		v->loc.column = 0;
		rc = csv_next(v, c, &line, &len, &at);
		if (rc == 0)
			return ES_E_VECS_EMPTY;
		if (rc > 0)
			rc = parse_row(v, c, line, len, NULL, NULL, &fields);
	}
	if (rc == 0 && fields == (uint32_t)c->id_column)
		rc = ES_E_VECS_DIM; /* only an id */
	if (rc < 0) {
		if (rc <= ES_STORE_ERR_FIRST && !v->loc.line)
			v->loc.line = c->line;
		return rc;
	}
	c->fields = fields;
	c->data_off = at;
	c->data_line = c->line - 1;
	v->dim = fields - (uint32_t)c->id_column;
	return 0;
}

int vecs_csv_open(struct es_vecs *v, uint64_t size, unsigned flags)
{
	unsigned char bom[3];
	struct csv *c = calloc(1, sizeof(*c));
	char *line;
	size_t len;
	int rc;

	if (!c)
		return -ENOMEM;
	v->impl = c;
	v->ops = &csv_ops;
	c->cap = CSV_BUF;
	c->buf = malloc(c->cap + 1);
	if (!c->buf)
		return -ENOMEM;
	c->id_column = (flags & ES_VECS_ID_COLUMN) != 0;
	c->header = (flags & ES_VECS_HEADER) != 0;
	v->has_ids = c->id_column;
	if (size >= 3) {
		rc = io_pread_all(v->fd, bom, 3, 0);
		if (rc < 0)
			return rc;
		if (!memcmp(bom, "\xef\xbb\xbf", 3))
			c->off = 3;
	}
	rc = csv_first_row(v, c);
	if (rc < 0)
		return rc;
	v->count = 1;
	while ((rc = csv_next(v, c, &line, &len, NULL)) > 0)
		v->count++;
	if (rc < 0)
		return rc;
	c->start = c->end = 0;
	c->eof = 0;
	c->off = c->data_off;
	c->line = c->data_line;
	return 0;
}
