/* clonekit._speedups: the hottest loops of the sanitizing path, compiled: the PHP-serialized walk of
 * sanitize/phpserialize.rewrite_strings, db/capture's split/decode/encode of typed lines, and the
 * HMAC-SHA256 of sanitize/actions.Keyed.
 *
 * Optional: setup.py builds it when a C compiler and Python's headers are there; without it the
 * pure-Python walks do the same work (clonekit/sanitize/phpserialize.py chooses at import).
 *
 * One rule above all: this walk never answers for a value it is not sure of. It handles the
 * common forms (strings, integers, booleans, floats, NULL, references, arrays, objects, strings
 * that are themselves serialized) exactly as the reference walk does, and returns None for
 * anything else (custom C: objects, enums, negative or huge counts, nesting deeper than the
 * reference allows, a value that does not parse, a rewrite that returns something other than
 * bytes): the Python walks then decide, and the reference alone decides what fails. The same
 * string rewrites are called, so the output is the same bytes
 * (tests/sanitize/test_phpserialize_compiled.py compares both on generated and damaged values).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 64     /* phpserialize._MAX_DEPTH: arrays and objects inside one another */
#define MAX_NESTED 16    /* serialized strings inside serialized strings: deeper is handed over */
#define MAX_DIGITS 18    /* a length, count or integer key with more digits is handed over */

/* A php action's string keys resolved once (php_value's key cache): the function fns or fn_for
   gives for the key, and how the walk may apply it to a value's bytes without a Python object */
enum { KEY_CALL = 0, KEY_SCRUB = 1, KEY_PSEUDONYM = 2 };
enum { PSEUDO_FALLBACK = -1, PSEUDO_ERROR = -2, PSEUDO_KEEP = -3 };  /* what the pseudonym functions return */
#define PSEUDO_OUT 256  /* room for a pseudonym */
#define KEY_CACHE_SIZE 64
#define KEY_MAX 64  /* longer keys are looked up every time */
typedef struct {
    Py_ssize_t len;
    char key[KEY_MAX];
    PyObject *fn;    /* a strong reference */
    int how;
    PyObject *spec;  /* KEY_PSEUDONYM: the compiled pseudonym's spec (strong), its kind and limit */
    long kind;
    Py_ssize_t limit;
} KeyEntry;
typedef struct {
    int count;
    KeyEntry entries[KEY_CACHE_SIZE];
} KeyCache;

typedef struct {
    PyObject *rewrite;   /* rewrite(key, value) -> bytes; with fns: fn_for(key) -> fn */
    PyObject *fns;       /* dict: key -> fn(value) -> bytes, or NULL */
    PyObject *keeps_plain; /* scrub_value: not called for a value scrub_keeps passes (it returns those unchanged), or NULL */
    int nested;
    KeyCache *cache;     /* with fns: the keys seen, or NULL */
} Walk;

static KeyEntry *key_entry(Walk *w, const char *k, Py_ssize_t n);
static PyObject *call_fallback(PyObject *fallback, PyObject *value);
static int key_value_bytes(const KeyEntry *e, const char *s, Py_ssize_t n, char *buf, const char **new_s,
                           Py_ssize_t *new_n);

typedef struct {
    char *buf;
    Py_ssize_t len;
    Py_ssize_t cap;
} Out;

static int
out_add(Out *out, const char *bytes, Py_ssize_t n)
{
    if (n == 0)
        return 0;  /* a change always adds its string's header: out->buf is set then */
    if (out->len + n > out->cap) {
        Py_ssize_t cap = out->cap ? out->cap : 256;
        while (cap < out->len + n) {
            if (cap > PY_SSIZE_T_MAX / 2) {
                PyErr_NoMemory();
                return -1;
            }
            cap *= 2;
        }
        char *grown = PyMem_Realloc(out->buf, (size_t)cap);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        out->buf = grown;
        out->cap = cap;
    }
    memcpy(out->buf + out->len, bytes, (size_t)n);
    out->len += n;
    return 0;
}

/* the decimal digits of v at out (room for 20), their count: snprintf's "%llu" without the cost
   of parsing a format in the loops that write every value's header */
static int
decimal_text(char *out, unsigned long long v)
{
    char reversed[20];
    int n = 0;
    do {
        reversed[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (int i = 0; i < n; i++)
        out[i] = reversed[n - 1 - i];
    return n;
}

/* ASCII digits at *pos (1 to MAX_DIGITS of them) followed by `stop`; *pos moves past `stop`.
   Returns 0 on success, -1 when the text is not that. */
static int
read_number(const char *d, Py_ssize_t size, Py_ssize_t *pos, char stop, long long *value)
{
    Py_ssize_t p = *pos;
    long long v = 0;
    int digits = 0;
    while (p < size && d[p] >= '0' && d[p] <= '9') {
        if (++digits > MAX_DIGITS)
            return -1;
        v = v * 10 + (d[p] - '0');
        p++;
    }
    if (digits == 0 || p >= size || d[p] != stop)
        return -1;
    *value = v;
    *pos = p + 1;
    return 0;
}

/* phpserialize.looks_serialized for a string whose second byte is ':' and longer than 3 bytes */
static int
looks_serialized(const char *s, Py_ssize_t n)
{
    if (n <= 3 || s[1] != ':' || s[0] == '\0' || strchr("aOsibdCE", s[0]) == NULL)
        return 0;
    return s[n - 1] == ';' || s[n - 1] == '}';
}

/* --- scrub's gates -------------------------------------------------------------------------
 * actions.scrub_builder's scrub changes a text only through steps that each open on a gate of
 * its own: an '@' (addresses, display names), "::" or six colons (IPv6: iptext.replace_ips),
 * three dots and iptext._V4_HINT (IPv4), eight decimal digits of any script (phones). A text that opens none of
 * them comes back as it is, so it need not reach Python at all. These functions test exactly
 * those gates (never fewer: a text they pass on may still come back unchanged, a text they keep
 * always does; tests/sanitize/test_scrub_gate.py compares them with scrub on adversarial text). */

/* re's \d on str: any Unicode decimal digit (_sre uses Py_UNICODE_ISDECIMAL) */
static int
is_decimal(Py_UCS4 c)
{
    return c < 128 ? (c >= '0' && c <= '9') : Py_UNICODE_ISDECIMAL(c);
}

/* iptext._V4_HINT.search(text) is not None: \d\.\d{1,3}\.\d somewhere */
static int
v4_hint(int kind, const void *data, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i + 4 < n; i++) {
        if (PyUnicode_READ(kind, data, i + 1) != '.' || !is_decimal(PyUnicode_READ(kind, data, i)))
            continue;
        for (Py_ssize_t k = 1; k <= 3 && i + 1 + k < n && is_decimal(PyUnicode_READ(kind, data, i + 1 + k)); k++) {
            if (i + 3 + k < n && PyUnicode_READ(kind, data, i + 2 + k) == '.'
                && is_decimal(PyUnicode_READ(kind, data, i + 3 + k)))
                return 1;
        }
    }
    return 0;
}

/* The code point of the well-formed UTF-8 sequence of 2 to 4 bytes whose lead byte is at
   data[i] (one byte per code unit of kind 1), or 0 when it is not one (surrogateescape then
   decodes those bytes to lone surrogates, which are no digits). */
static Py_UCS4
utf8_at(const void *data, Py_ssize_t n, Py_ssize_t i)
{
    const unsigned char *s = (const unsigned char *)data;
    unsigned char c = s[i];
    int more = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC2 ? 1 : 0;
    if (more == 0 || c > 0xF4 || i + more >= n)
        return 0;
    Py_UCS4 cp = c & (0x3F >> more);
    for (int k = 1; k <= more; k++) {
        if ((s[i + k] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    return cp;
}

/* 1 when scrub surely returns the text (n code points of the given kind) unchanged. With
   `bytes_nonascii` (UTF-8 bytes, decoded later with surrogateescape) a byte >= 0x80 may be part
   of a Unicode digit: three dots and any such byte are passed on, and a digit of another script
   is found by decoding its sequence. Digits of any script count towards a phone's eight, as re's
   \d finds them (scrub replaces them: actions._digits_rewritten). */
#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

static ALWAYS_INLINE int
scrub_keeps_of(int kind, const void *data, Py_ssize_t n, int bytes_nonascii)
{
    Py_ssize_t digits = 0, colons = 0, dots = 0;
    int nonascii = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == '@')
            return 0;
        if (c == ':') {
            if (i + 1 < n && PyUnicode_READ(kind, data, i + 1) == ':')
                return 0;
            colons++;
        } else if (c == '.') {
            dots++;
        } else if (c >= '0' && c <= '9') {
            digits++;
        } else if (c >= 0x80) {
            nonascii = 1;
            if (bytes_nonascii ? is_decimal(utf8_at(data, n, i)) : is_decimal(c))
                digits++;
        }
    }
    if (digits >= 8 || colons >= 6)
        return 0;
    if (dots >= 3) {
        if (nonascii && bytes_nonascii)
            return 0;
        if (v4_hint(kind, data, n))
            return 0;
    }
    return 1;
}

/* scrub_keeps_of with its one-byte forms (every byte string, and most str) compiled apart: the
   loop then reads bytes, not a code unit of a kind chosen per character */
static int
scrub_keeps(int kind, const void *data, Py_ssize_t n, int bytes_nonascii)
{
    if (kind == PyUnicode_1BYTE_KIND)
        return bytes_nonascii ? scrub_keeps_of(PyUnicode_1BYTE_KIND, data, n, 1)
                              : scrub_keeps_of(PyUnicode_1BYTE_KIND, data, n, 0);
    return scrub_keeps_of(kind, data, n, bytes_nonascii);
}

static int
plain_text(const char *s, Py_ssize_t n)
{
    return scrub_keeps(PyUnicode_1BYTE_KIND, s, n, 1);
}

/* The new bytes for one string value, a new reference; NULL with an exception set. */
static PyObject *
call_rewrite(Walk *w, PyObject *key, PyObject *value)
{
    if (w->fns == NULL) {
        PyObject *args[2] = {key, value};
        return PyObject_Vectorcall(w->rewrite, args, 2, NULL);
    }
    PyObject *fn = PyDict_GetItemWithError(w->fns, key);  /* borrowed */
    if (fn != NULL) {
        Py_INCREF(fn);
    } else {
        if (PyErr_Occurred())
            return NULL;
        PyObject *args[1] = {key};
        fn = PyObject_Vectorcall(w->rewrite, args, 1, NULL);
        if (fn == NULL)
            return NULL;
    }
    PyObject *result;
    if (fn == w->keeps_plain && plain_text(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))) {
        Py_INCREF(value);
        result = value;
    } else {
        PyObject *args[1] = {value};
        result = PyObject_Vectorcall(fn, args, 1, NULL);
    }
    Py_DECREF(fn);
    return result;
}

static PyObject *walk(Walk *w, PyObject *data_obj, int level);

#define HAND_OVER() do { result = Py_None; Py_INCREF(result); goto done; } while (0)
#define FAIL() do { result = NULL; goto done; } while (0)

/* rewrite_strings over one value: the new bytes (data_obj itself when nothing changed), None
   when the Python walks must decide, NULL with an exception raised by a rewrite. */
static PyObject *
walk(Walk *w, PyObject *data_obj, int level)
{
    const char *d = PyBytes_AS_STRING(data_obj);
    Py_ssize_t size = PyBytes_GET_SIZE(data_obj);
    Py_ssize_t left[MAX_DEPTH];  /* entries still to read in each open array or object */
    int depth = 0;
    int want_key = 0;
    Py_ssize_t pos = 0, flushed = 0;
    Out out = {NULL, 0, 0};
    PyObject *key = Py_None;  /* NULL: the string key at key_at, no object made yet */
    Py_ssize_t key_at = 0, key_len = 0;
    char pseudo[PSEUDO_OUT];
    PyObject *result = NULL;
    long long number;
    Py_INCREF(key);

    for (;;) {
        char tag = pos < size ? d[pos] : 0;
        if (want_key) {
            if (left[depth - 1] == 0) {  /* every entry read: the array ends */
                if (tag != '}')
                    HAND_OVER();
                pos++;
                depth--;
                if (depth == 0)
                    break;
                left[depth - 1]--;
                continue;
            }
            if (tag == 'i') {  /* i:-?\d+; */
                Py_ssize_t p = pos + 1;
                int negative = 0;
                if (p >= size || d[p] != ':')
                    HAND_OVER();
                p++;
                if (p < size && d[p] == '-') {
                    negative = 1;
                    p++;
                }
                if (read_number(d, size, &p, ';', &number) < 0)
                    HAND_OVER();
                Py_XDECREF(key);
                key = PyLong_FromLongLong(negative ? -number : number);
                if (key == NULL)
                    FAIL();
                pos = p;
                want_key = 0;
                continue;
            }
            if (tag != 's')
                HAND_OVER();
        }
        if (tag == 's') {  /* s:<len>:"...";  */
            Py_ssize_t p = pos + 1;
            if (p >= size || d[p] != ':')
                HAND_OVER();
            p++;
            if (read_number(d, size, &p, ':', &number) < 0 || p >= size || d[p] != '"')
                HAND_OVER();
            Py_ssize_t start = p + 1;
            if ((long long)(size - start) < number + 2)
                HAND_OVER();
            Py_ssize_t end = start + (Py_ssize_t)number;
            if (d[end] != '"' || d[end + 1] != ';')
                HAND_OVER();
            if (want_key) {
                Py_XDECREF(key);
                key = NULL;  /* the string key d[key_at:key_at + key_len]: an object made when needed */
                key_at = start;
                key_len = end - start;
                if (w->cache == NULL && (key = PyBytes_FromStringAndSize(d + start, key_len)) == NULL)
                    FAIL();
                pos = end + 2;
                want_key = 0;
                continue;
            }
            int nested = w->nested && looks_serialized(d + start, end - start);
            PyObject *cached_fn = NULL;  /* borrowed from the key cache */
            if (!nested && key == NULL) {  /* a string key, the cache on: the key's function on the bytes */
                KeyEntry *entry = key_entry(w, d + key_at, key_len);
                if (entry == NULL && PyErr_Occurred())
                    FAIL();
                const char *new_s;
                Py_ssize_t new_n;
                int done = entry == NULL ? 0 : key_value_bytes(entry, d + start, end - start, pseudo, &new_s, &new_n);
                if (done < 0)
                    FAIL();
                if (done && (new_n != end - start || memcmp(new_s, d + start, (size_t)new_n) != 0)) {
                    char head[32] = "s:";
                    int head_size = 2 + decimal_text(head + 2, (unsigned long long)new_n);
                    head[head_size++] = ':';
                    head[head_size++] = '"';
                    if (out_add(&out, d + flushed, pos - flushed) < 0 || out_add(&out, head, head_size) < 0
                            || out_add(&out, new_s, new_n) < 0 || out_add(&out, "\";", 2) < 0)
                        FAIL();
                    flushed = end + 2;
                }
                if (done) {
                    pos = end + 2;
                    goto value_done;
                }
                if (entry != NULL)
                    cached_fn = entry->fn;  /* the bytes route could not decide: the function itself */
            }
            if (key == NULL && cached_fn == NULL && (key = PyBytes_FromStringAndSize(d + key_at, key_len)) == NULL)
                FAIL();  /* not cached (a long key, a full cache, a nested value): looked up as before */
            PyObject *value = PyBytes_FromStringAndSize(d + start, end - start);
            if (value == NULL)
                FAIL();
            PyObject *new = NULL;
            if (nested) {
                /* WordPress double-serializes: the string is walked as a value of its own */
                if (level >= MAX_NESTED) {
                    Py_DECREF(value);
                    HAND_OVER();
                }
                new = walk(w, value, level + 1);
                if (new == NULL) {
                    Py_DECREF(value);
                    FAIL();
                }
                if (new == Py_None) {  /* not sure it parses: the Python walks decide */
                    Py_DECREF(new);
                    Py_DECREF(value);
                    HAND_OVER();
                }
            } else {
                new = cached_fn != NULL ? call_fallback(cached_fn, value) : call_rewrite(w, key, value);
                if (new == NULL) {
                    Py_DECREF(value);
                    FAIL();
                }
            }
            if (!PyBytes_CheckExact(new)) {
                Py_DECREF(new);
                Py_DECREF(value);
                HAND_OVER();
            }
            Py_ssize_t new_size = PyBytes_GET_SIZE(new);
            if (new != value && (new_size != end - start || memcmp(PyBytes_AS_STRING(new), d + start, (size_t)new_size) != 0)) {
                char head[32] = "s:";
                int head_size = 2 + decimal_text(head + 2, (unsigned long long)new_size);
                head[head_size++] = ':';
                head[head_size++] = '"';
                if (out_add(&out, d + flushed, pos - flushed) < 0 || out_add(&out, head, head_size) < 0
                        || out_add(&out, PyBytes_AS_STRING(new), new_size) < 0 || out_add(&out, "\";", 2) < 0) {
                    Py_DECREF(new);
                    Py_DECREF(value);
                    FAIL();
                }
                flushed = end + 2;
            }
            Py_DECREF(new);
            Py_DECREF(value);
            pos = end + 2;
        value_done:;
        } else if (tag == 'a' || tag == 'O') {  /* a:<n>:{   O:<len>:"Class":<n>:{ */
            Py_ssize_t p = pos + 1;
            if (depth >= MAX_DEPTH || p >= size || d[p] != ':')
                HAND_OVER();
            p++;
            if (tag == 'O') {
                if (read_number(d, size, &p, ':', &number) < 0 || p >= size || d[p] != '"')
                    HAND_OVER();
                p++;
                if ((long long)(size - p) < number + 2)
                    HAND_OVER();
                p += (Py_ssize_t)number;
                if (d[p] != '"' || d[p + 1] != ':')
                    HAND_OVER();
                p += 2;
            }
            if (read_number(d, size, &p, ':', &number) < 0 || p >= size || d[p] != '{')
                HAND_OVER();
            left[depth++] = (Py_ssize_t)number;
            pos = p + 1;
            want_key = 1;
            continue;
        } else if (tag == 'N') {  /* N; */
            if (pos + 1 >= size || d[pos + 1] != ';')
                HAND_OVER();
            pos += 2;
        } else if (tag == 'i' || tag == 'b' || tag == 'r' || tag == 'R') {  /* i:-?\d+;  b:\d+;  [rR]:\d+; */
            Py_ssize_t p = pos + 1;
            if (p >= size || d[p] != ':')
                HAND_OVER();
            p++;
            if (tag == 'i' && p < size && d[p] == '-')
                p++;
            Py_ssize_t digits = p;
            while (p < size && d[p] >= '0' && d[p] <= '9')
                p++;
            if (p == digits || p >= size || d[p] != ';')
                HAND_OVER();
            pos = p + 1;
        } else if (tag == 'd') {  /* d:[^;]*; */
            if (pos + 1 >= size || d[pos + 1] != ':')
                HAND_OVER();
            const char *semi = memchr(d + pos + 2, ';', (size_t)(size - pos - 2));
            if (semi == NULL)
                HAND_OVER();
            pos = semi - d + 1;
        } else {  /* C: custom objects, E: enums, anything unknown: the Python walks decide */
            HAND_OVER();
        }
        if (depth == 0)  /* the top-level value ended */
            break;
        left[depth - 1]--;
        want_key = 1;
    }
    if (pos != size)
        HAND_OVER();
    if (out.buf == NULL) {
        Py_INCREF(data_obj);
        result = data_obj;
    } else if (out_add(&out, d + flushed, size - flushed) < 0) {
        FAIL();
    } else {
        result = PyBytes_FromStringAndSize(out.buf, out.len);
    }
done:
    Py_XDECREF(key);
    PyMem_Free(out.buf);
    return result;
}

static PyObject *
rewrite_strings(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "rewrite_strings(data, rewrite, nested)");
        return NULL;
    }
    if (!PyBytes_CheckExact(args[0]))
        Py_RETURN_NONE;
    int nested = PyObject_IsTrue(args[2]);
    if (nested < 0)
        return NULL;
    Walk w = {args[1], NULL, NULL, nested, NULL};
    return walk(&w, args[0], 0);
}

static PyObject *
rewrite_strings_by_key(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "rewrite_strings_by_key(data, fns, fn_for, keeps_plain, nested)");
        return NULL;
    }
    if (!PyBytes_CheckExact(args[0]))
        Py_RETURN_NONE;
    if (!PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "fns must be a dict");
        return NULL;
    }
    int nested = PyObject_IsTrue(args[4]);
    if (nested < 0)
        return NULL;
    Walk w = {args[2], args[1], args[3] == Py_None ? NULL : args[3], nested, NULL};
    return walk(&w, args[0], 0);
}

/* ---- the sanitizing path's rows: tsv-1 lines split, decoded, transformed, encoded ---------------
 *
 * db/capture.py's _RowTransformer.lines for a batch of lines, in one call: the same fields, the
 * same values handed to the transform, the same bytes out (tests/db/test_typed_lines_compiled.py).
 * Decoding and encoding are done here only for the plain cases (text, blobs, integers, NULL);
 * anything else goes through the Python decoder or codec.value_field, as before.
 */

enum { DECODE_KEEP = 0, DECODE_PYTHON = 1, DECODE_TEXT = 2, DECODE_BLOB = 3, DECODE_INT = 4 };

static int
is_null_field(const char *s, Py_ssize_t n)
{
    return n == 2 && s[0] == '\\' && s[1] == 'N';
}

/* codec.unescape of s[0:n] written at o (room for n bytes: unescaping only shrinks): \x -> the
   byte _UNESCAPES maps x to, or x itself; a last lone backslash stays. Returns the length written */
static Py_ssize_t
unescape_to(char *o, const char *s, Py_ssize_t n)
{
    /* the runs between backslashes copied whole; a backslash at the very end stays */
    const char *end = s + n;
    char *start = o;
    while (s < end) {
        const char *bs = memchr(s, '\\', (size_t)(end - s));
        const char *stop = bs == NULL ? end : bs;
        memcpy(o, s, (size_t)(stop - s));
        o += stop - s;
        if (bs == NULL)
            break;
        if (bs + 1 == end) {
            *o++ = '\\';
            break;
        }
        char c = bs[1];
        switch (c) {
        case 't': c = '\t'; break;
        case 'n': c = '\n'; break;
        case '0': c = '\0'; break;
        case 'r': c = '\r'; break;
        case 'Z': c = '\x1a'; break;
        case 'b': c = '\b'; break;
        default: break;
        }
        *o++ = c;
        s = bs + 2;
    }
    return o - start;
}

/* codec.unescape as a new bytes object */
static PyObject *
unescaped(const char *s, Py_ssize_t n)
{
    if (memchr(s, '\\', (size_t)n) == NULL)
        return PyBytes_FromStringAndSize(s, n);
    PyObject *out = PyBytes_FromStringAndSize(NULL, n);
    if (out == NULL)
        return NULL;
    if (_PyBytes_Resize(&out, unescape_to(PyBytes_AS_STRING(out), s, n)) < 0)
        return NULL;
    return out;
}

static PyObject *
decode_field(const char *s, Py_ssize_t n, int mode, PyObject *decoder, PyObject *field)
{
    if (mode == DECODE_PYTHON) {
        PyObject *args[1] = {field};
        return PyObject_Vectorcall(decoder, args, 1, NULL);
    }
    if (is_null_field(s, n))
        Py_RETURN_NONE;
    if (mode == DECODE_BLOB) {
        if (memchr(s, '\\', (size_t)n) == NULL) {
            Py_INCREF(field);
            return field;
        }
        return unescaped(s, n);
    }
    if (mode == DECODE_TEXT) {
        if (memchr(s, '\\', (size_t)n) == NULL)
            return PyUnicode_DecodeUTF8(s, n, "surrogateescape");
        PyObject *raw = unescaped(s, n);
        if (raw == NULL)
            return NULL;
        PyObject *text = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), "surrogateescape");
        Py_DECREF(raw);
        return text;
    }
    /* DECODE_INT: -?digits (up to 18) here, anything else as int(field) does it */
    Py_ssize_t i = (n > 0 && s[0] == '-') ? 1 : 0;
    long long v = 0;
    if (n - i >= 1 && n - i <= 18) {
        Py_ssize_t j = i;
        while (j < n && s[j] >= '0' && s[j] <= '9') {
            v = v * 10 + (s[j] - '0');
            j++;
        }
        if (j == n)
            return PyLong_FromLongLong(i ? -v : v);
    }
    PyObject *args[1] = {field};
    return PyObject_Vectorcall((PyObject *)&PyLong_Type, args, 1, NULL);
}

/* codec.escape of n bytes: backslash, TAB and newline escaped; `same` (or NULL) is returned
   (a new reference) when nothing needs escaping */
static PyObject *
escaped(const char *s, Py_ssize_t n, PyObject *same)
{
    Py_ssize_t extra = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        extra += (s[i] == '\\' || s[i] == '\t' || s[i] == '\n');
    if (extra == 0 && same != NULL) {
        Py_INCREF(same);
        return same;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, n + extra);
    if (out == NULL)
        return NULL;
    char *o = PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' || c == '\t' || c == '\n') {
            *o++ = '\\';
            *o++ = c == '\\' ? '\\' : c == '\t' ? 't' : 'n';
        } else {
            *o++ = c;
        }
    }
    return out;
}

/* codec.value_field(value, column) for the plain types; the Python function for the others */
static PyObject *
encode_value(PyObject *value, int plain, PyObject *value_field, PyObject *column)
{
    if (value == Py_None)
        return PyBytes_FromStringAndSize("\\N", 2);
    if (plain) {
        if (PyBytes_CheckExact(value))
            return escaped(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), value);
        if (PyUnicode_CheckExact(value)) {
            if (PyUnicode_IS_ASCII(value))
                return escaped((const char *)PyUnicode_1BYTE_DATA(value), PyUnicode_GET_LENGTH(value), NULL);
            PyObject *raw = PyUnicode_AsEncodedString(value, "utf-8", "surrogateescape");
            if (raw == NULL)
                return NULL;
            PyObject *out = escaped(PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), raw);
            Py_DECREF(raw);
            return out;
        }
        if (value == Py_True)
            return PyBytes_FromStringAndSize("1", 1);
        if (value == Py_False)
            return PyBytes_FromStringAndSize("0", 1);
        if (PyLong_CheckExact(value)) {
            int overflow;
            long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
            if (v == -1 && PyErr_Occurred())
                return NULL;
            if (!overflow) {
                char text[32];
                int n = v < 0;
                text[0] = '-';
                n += decimal_text(text + n, v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v);
                return PyBytes_FromStringAndSize(text, n);
            }
        }
    }
    PyObject *args[2] = {value, column};
    return PyObject_Vectorcall(value_field, args, 2, NULL);
}

/* ---- CRC-32 (zlib's: reflected, polynomial 0xEDB88320), eight bytes a step -----------------------
 *
 * codec.python_cut's hash of each transformed line, computed where the line is written instead of
 * through a Python call per line. Checked against zlib.crc32 (tests/db/test_typed_lines_compiled.py). */

static uint32_t CRC_TABLE[8][256];

static void
crc32_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        CRC_TABLE[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            CRC_TABLE[t][i] = (CRC_TABLE[t - 1][i] >> 8) ^ CRC_TABLE[0][CRC_TABLE[t - 1][i] & 0xff];
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The same CRC folded 64 bytes a step with carry-less multiplication (PCLMULQDQ, x86-64 CPUs
   since 2010), chosen at import when the CPU has it: the method of Gopal et al., "Fast CRC
   Computation for Generic Polynomials Using PCLMULQDQ Instruction" (Intel, 2009), with the
   paper's bit-reflected constants for this polynomial: four lanes folded 512 bits ahead (k1,
   k2), one lane 128 bits ahead (k3, k4), 96 bits to 64 (k5), then Barrett's reduction (P and mu).
   c is the running state (not inverted at the end); n >= 64 and a multiple of 16. Checked
   against zlib.crc32 at every alignment (tests/db/test_chunk_lines_compiled.py). */
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_CRC_FOLD 1

__attribute__((target("pclmul,sse4.1")))
static uint32_t
crc32_fold(uint32_t c, const unsigned char *p, size_t n)
{
    const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596LL, 0x0154442bd4LL);
    const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009eLL, 0x01751997d0LL);
    const __m128i k5 = _mm_set_epi64x(0, 0x0163cd6124LL);
    const __m128i poly = _mm_set_epi64x(0x01f7011641LL, 0x01db710641LL);
    const __m128i low32 = _mm_setr_epi32(~0, 0, ~0, 0);
    __m128i x1 = _mm_loadu_si128((const __m128i *)(p + 0x00)), x2 = _mm_loadu_si128((const __m128i *)(p + 0x10));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 0x20)), x4 = _mm_loadu_si128((const __m128i *)(p + 0x30));
    x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)c));
    p += 64;
    n -= 64;
    for (; n >= 64; p += 64, n -= 64) {  /* four lanes, each folded 512 bits ahead */
        __m128i f1 = _mm_clmulepi64_si128(x1, k1k2, 0x00), f2 = _mm_clmulepi64_si128(x2, k1k2, 0x00);
        __m128i f3 = _mm_clmulepi64_si128(x3, k1k2, 0x00), f4 = _mm_clmulepi64_si128(x4, k1k2, 0x00);
        x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k1k2, 0x11), f1), _mm_loadu_si128((const __m128i *)(p + 0x00)));
        x2 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x2, k1k2, 0x11), f2), _mm_loadu_si128((const __m128i *)(p + 0x10)));
        x3 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x3, k1k2, 0x11), f3), _mm_loadu_si128((const __m128i *)(p + 0x20)));
        x4 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x4, k1k2, 0x11), f4), _mm_loadu_si128((const __m128i *)(p + 0x30)));
    }
    /* the four lanes into one, then the 16-byte blocks left */
    x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x11), x2), _mm_clmulepi64_si128(x1, k3k4, 0x00));
    x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x11), x3), _mm_clmulepi64_si128(x1, k3k4, 0x00));
    x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x11), x4), _mm_clmulepi64_si128(x1, k3k4, 0x00));
    for (; n >= 16; p += 16, n -= 16)
        x1 = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x1, k3k4, 0x11), _mm_loadu_si128((const __m128i *)p)),
                           _mm_clmulepi64_si128(x1, k3k4, 0x00));
    /* 128 bits to 64, then Barrett's reduction to 32 */
    x2 = _mm_clmulepi64_si128(x1, k3k4, 0x10);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), x2);
    x2 = _mm_srli_si128(x1, 4);
    x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, low32), k5, 0x00), x2);
    x2 = _mm_clmulepi64_si128(_mm_and_si128(x1, low32), poly, 0x10);
    x2 = _mm_clmulepi64_si128(_mm_and_si128(x2, low32), poly, 0x00);
    return (uint32_t)_mm_extract_epi32(_mm_xor_si128(x1, x2), 1);
}

static int
cpu_has_clmul(void)
{
    unsigned int a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_PCLMUL) && (c & bit_SSE4_1);
}
#endif

static int crc_fold_on = 0;  /* crc32_fold chosen at import */

static uint32_t
crc32_of(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
#ifdef HAVE_CRC_FOLD
    if (crc_fold_on && n >= 64) {
        size_t folded = n & ~(size_t)15;
        c = crc32_fold(c, p, folded);
        p += folded;
        n -= folded;
    }
#endif
#if PY_LITTLE_ENDIAN
    while (n >= 8) {
        uint32_t one, two;
        memcpy(&one, p, 4);
        memcpy(&two, p + 4, 4);
        one ^= c;
        c = CRC_TABLE[7][one & 0xff] ^ CRC_TABLE[6][(one >> 8) & 0xff] ^ CRC_TABLE[5][(one >> 16) & 0xff]
            ^ CRC_TABLE[4][one >> 24] ^ CRC_TABLE[3][two & 0xff] ^ CRC_TABLE[2][(two >> 8) & 0xff]
            ^ CRC_TABLE[1][(two >> 16) & 0xff] ^ CRC_TABLE[0][two >> 24];
        p += 8;
        n -= 8;
    }
#endif
    while (n--)
        c = CRC_TABLE[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* a bytes object written at its end and grown in place (_PyBytes_Resize): a batch's output
   without a copy of it at the end */
typedef struct {
    PyObject *bytes;
    Py_ssize_t len;
} Grown;

/* room for n more bytes at the end: where to write them, or NULL (g->bytes is then NULL) */
static char *
grown_room(Grown *g, Py_ssize_t n)
{
    Py_ssize_t cap = PyBytes_GET_SIZE(g->bytes);
    if (n > cap - g->len) {
        if (n > PY_SSIZE_T_MAX / 2 - cap) {
            Py_CLEAR(g->bytes);
            PyErr_NoMemory();
            return NULL;
        }
        if (_PyBytes_Resize(&g->bytes, cap + cap / 2 + n) < 0)
            return NULL;
    }
    return PyBytes_AS_STRING(g->bytes) + g->len;
}

/* the row's fields at the end of out, TAB-separated, with its newline: encoded[i] where set, else
   the line's own bytes d[starts[i]:ends[i]]; total is their length with the separators. 0, or -1 */
static int
write_fields(Grown *out, Py_ssize_t total, const char *d, Py_ssize_t width, const Py_ssize_t *starts,
             const Py_ssize_t *ends, PyObject *const *encoded)
{
    char *o = grown_room(out, total);
    if (o == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < width; i++) {
        if (encoded[i] == NULL) {
            memcpy(o, d + starts[i], (size_t)(ends[i] - starts[i]));
            o += ends[i] - starts[i];
        } else {
            memcpy(o, PyBytes_AS_STRING(encoded[i]), (size_t)PyBytes_GET_SIZE(encoded[i]));
            o += PyBytes_GET_SIZE(encoded[i]);
        }
        *o++ = i + 1 < width ? '\t' : '\n';
    }
    out->len += total;
    return 0;
}

/* One row (the line d[0:size], no newline) split, decoded, transformed and written at the end of
   out with its newline: the same values and bytes as _RowTransformer.lines_python. 0, or -1 */
static int
transform_row(const char *d, Py_ssize_t size, Py_ssize_t width, PyObject *transform, PyObject *const *decoders,
              const int *modes, const int *plain, PyObject *value_field, PyObject *columns,
              Py_ssize_t *starts, Py_ssize_t *ends, PyObject **encoded, Grown *out)
{
    Py_ssize_t count = 1;
    for (const char *p = d; (p = memchr(p, '\t', (size_t)(d + size - p))) != NULL; p++)
        count++;
    if (count != width) {
        PyErr_Format(PyExc_ValueError, "a row has %zd fields, not %zd", count, width);
        return -1;
    }
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < width; i++) {
        const char *tab = memchr(d + at, '\t', (size_t)(size - at));
        Py_ssize_t end = tab == NULL ? size : tab - d;
        starts[i] = at;
        ends[i] = end;
        at = end + 1;
    }
    PyObject *row = PyTuple_New(width);
    if (row == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < width; i++) {
        PyObject *field = PyBytes_FromStringAndSize(d + starts[i], ends[i] - starts[i]);
        if (field == NULL) {
            Py_DECREF(row);
            return -1;
        }
        if (modes[i] == DECODE_KEEP) {
            PyTuple_SET_ITEM(row, i, field);
            continue;
        }
        PyObject *value = decode_field(d + starts[i], ends[i] - starts[i], modes[i], decoders[i], field);
        Py_DECREF(field);
        if (value == NULL) {
            Py_DECREF(row);
            return -1;
        }
        PyTuple_SET_ITEM(row, i, value);
    }
    PyObject *args[1] = {row};
    PyObject *new = PyObject_Vectorcall(transform, args, 1, NULL);
    if (new == NULL) {
        Py_DECREF(row);
        return -1;
    }
    int status = -1;
    if (new == row) {  /* unchanged: the line's own bytes */
        Py_DECREF(new);
        char *o = grown_room(out, size + 1);
        if (o != NULL) {
            memcpy(o, d, (size_t)size);
            o[size] = '\n';
            out->len += size + 1;
            status = 0;
        }
        Py_DECREF(row);
        return status;
    }
    PyObject *seq = PySequence_Fast(new, "a transform returns a sequence");
    Py_DECREF(new);
    if (seq == NULL) {
        Py_DECREF(row);
        return -1;
    }
    if (PySequence_Fast_GET_SIZE(seq) < width) {
        PyErr_SetString(PyExc_IndexError, "tuple index out of range");
        goto out;
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_ssize_t total = width;  /* the TABs and the newline */
    for (Py_ssize_t i = 0; i < width; i++)
        encoded[i] = NULL;
    for (Py_ssize_t i = 0; i < width; i++) {
        if (items[i] == PyTuple_GET_ITEM(row, i)) {
            total += ends[i] - starts[i];
            continue;
        }
        encoded[i] = encode_value(items[i], plain[i], value_field, PyTuple_GET_ITEM(columns, i));
        if (encoded[i] == NULL)
            goto out_encoded;
        if (!PyBytes_Check(encoded[i])) {
            PyErr_SetString(PyExc_TypeError, "value_field returned something other than bytes");
            goto out_encoded;
        }
        total += PyBytes_GET_SIZE(encoded[i]);
    }
    if (write_fields(out, total, d, width, starts, ends, encoded) < 0)
        goto out_encoded;
    status = 0;
out_encoded:
    for (Py_ssize_t i = 0; i < width; i++)
        Py_XDECREF(encoded[i]);
out:
    Py_DECREF(seq);
    Py_DECREF(row);
    return status;
}

/* ---- span rows: planner.compile_transform's transform_plain without choosers (one action per
 * column, no `when`: most tables) done without a tuple or an object per field. Each column's action
 * is none (not read: its bytes stay), SPAN_SCRUB (scrub_gate: a text whose UTF-8 bytes scrub surely
 * keeps, within the limit, stays as it is with no Python object made) or SPAN_CALL (its value
 * function on the value decoded as transform_row decodes it, as transform_plain calls it). A row
 * with an error, or with a field count other than the width, goes to transform_row instead, which
 * gives the same bytes or raises as it always did (tests/db/test_typed_lines_compiled.py). */

enum { SPAN_NONE = 0, SPAN_CALL = 1, SPAN_SCRUB = 2 };

typedef struct {
    int code;
    PyObject *fn;  /* borrowed from the spans tuple */
    Py_ssize_t limit;  /* SPAN_SCRUB: the column's characters, -1 for none */
    PyObject *pseudonym;  /* SPAN_CALL of a compiled pseudonym on text: its spec (strong), kind and limit */
    long kind;
    Py_ssize_t pseudonym_limit;
} SpanAction;

static void pseudonym_of(PyObject *fn, PyObject **spec, long *kind, Py_ssize_t *limit);
static Py_ssize_t pseudonym_ascii(PyObject *spec, long kind, Py_ssize_t limit, const char *s, Py_ssize_t n, char *out);
static int ascii_bytes(const char *s, Py_ssize_t n);

/* codec.unescape of s[0:n] into scratch (emptied first): 0, or -1 with an exception */
static int
unescape_into(Out *scratch, const char *s, Py_ssize_t n)
{
    scratch->len = 0;
    if (scratch->cap < n && out_add(scratch, s, n) < 0)  /* room for n bytes */
        return -1;
    scratch->len = unescape_to(scratch->buf, s, n);
    return 0;
}

/* One row as transform_row writes it, through the span actions: 1 written, 0 handed over (nothing
   written, no exception), -1 with an exception (the output could not grow) */
static int
span_row(const char *d, Py_ssize_t size, Py_ssize_t width, const SpanAction *actions, const int *modes,
         const int *plain, PyObject *value_field, PyObject *columns, Py_ssize_t *starts, Py_ssize_t *ends,
         PyObject **encoded, Out *scratch, Grown *out)
{
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < width; i++) {
        const char *tab = memchr(d + at, '\t', (size_t)(size - at));
        if ((tab == NULL) != (i + 1 == width))
            return 0;  /* a field count other than the width: transform_row says so */
        Py_ssize_t end = tab == NULL ? size : tab - d;
        starts[i] = at;
        ends[i] = end;
        at = end + 1;
    }
    int handed = 0;
    Py_ssize_t total = width;  /* the TABs and the newline */
    for (Py_ssize_t i = 0; i < width; i++)
        encoded[i] = NULL;
    for (Py_ssize_t i = 0; i < width && !handed; i++) {
        const SpanAction *a = &actions[i];
        const char *s = d + starts[i];
        Py_ssize_t n = ends[i] - starts[i];
        if (a->code == SPAN_NONE || is_null_field(s, n))  /* transform_plain leaves NULL alone */
            continue;
        if (memchr(s, '\\', (size_t)n) != NULL) {
            if (unescape_into(scratch, s, n) < 0) {
                handed = 1;
                break;
            }
            s = scratch->buf;
            n = scratch->len;
        }
        if (a->code == SPAN_SCRUB && (a->limit < 0 || n <= a->limit) && scrub_keeps(PyUnicode_1BYTE_KIND, s, n, 1))
            continue;  /* at most n characters, none opening a gate: scrub_gate returns it */
        if (a->pseudonym != NULL && plain[i] && ascii_bytes(s, n)) {  /* pseudonym's ASCII str, from the bytes */
            char buf[PSEUDO_OUT];
            Py_ssize_t len = pseudonym_ascii(a->pseudonym, a->kind, a->pseudonym_limit, s, n, buf);
            if (len == PSEUDO_KEEP)
                continue;
            if (len >= 0) {  /* encode_value of that ASCII str */
                if ((encoded[i] = escaped(buf, len, NULL)) == NULL)
                    handed = 1;
                continue;
            }
            if (len == PSEUDO_ERROR) {
                handed = 1;
                break;
            }  /* PSEUDO_FALLBACK: the function itself, on the str */
        }
        PyObject *value = modes[i] == DECODE_TEXT ? PyUnicode_DecodeUTF8(s, n, "surrogateescape")
                                                  : PyBytes_FromStringAndSize(s, n);
        PyObject *new = value == NULL ? NULL : call_fallback(a->fn, value);
        if (new == NULL) {
            Py_XDECREF(value);
            handed = 1;
            break;
        }
        if (new != value) {
            encoded[i] = encode_value(new, plain[i], value_field, PyTuple_GET_ITEM(columns, i));
            if (encoded[i] == NULL || !PyBytes_Check(encoded[i]))
                handed = 1;
        }
        Py_DECREF(new);
        Py_DECREF(value);
    }
    int status = 0;
    if (handed) {
        PyErr_Clear();  /* transform_row runs the row again and raises what it raises */
        goto done;
    }
    for (Py_ssize_t i = 0; i < width; i++)
        total += encoded[i] == NULL ? ends[i] - starts[i] : PyBytes_GET_SIZE(encoded[i]);
    status = write_fields(out, total, d, width, starts, ends, encoded) < 0 ? -1 : 1;
done:
    for (Py_ssize_t i = 0; i < width; i++)
        Py_XDECREF(encoded[i]);
    return status;
}

/* transform_batch(data, transform, decoders, value_field, columns, scale[, spans]) -> (out, cuts, rows):
   _RowTransformer.batch: every line of data (tsv-1 rows, each ending with a newline) through
   transform_row (or span_row, given spans: per column None or (code, fn, limit)), joined, with the
   end offsets (in out) of the rows where a chunk may end, crc32(line) < len(line) * scale
   (codec.python_cut), and the number of rows */
static PyObject *
transform_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 && nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "transform_batch(data, transform, decoders, value_field, columns, scale[, spans])");
        return NULL;
    }
    PyObject *data = args[0], *transform = args[1], *decoders = args[2], *value_field = args[3], *columns = args[4];
    if (!PyBytes_CheckExact(data) || !PyTuple_CheckExact(decoders) || !PyTuple_CheckExact(columns)
            || PyTuple_GET_SIZE(decoders) != PyTuple_GET_SIZE(columns) || PyTuple_GET_SIZE(columns) == 0) {
        PyErr_SetString(PyExc_TypeError, "transform_batch: data is bytes, decoders and columns tuples of one width");
        return NULL;
    }
    unsigned long long scale = PyLong_AsUnsignedLongLong(args[5]);
    if (scale == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    const char *d = PyBytes_AS_STRING(data);
    Py_ssize_t size = PyBytes_GET_SIZE(data);
    if (size > 0 && d[size - 1] != '\n') {
        PyErr_SetString(PyExc_ValueError, "a batch ends inside a row");
        return NULL;
    }
    Py_ssize_t width = PyTuple_GET_SIZE(columns);
    /* decoders[i]: (mode, python decoder or None, plain encoding) */
    int *modes = PyMem_Calloc((size_t)width, 2 * sizeof(int));
    Py_ssize_t *bounds = PyMem_Calloc((size_t)width, 2 * sizeof(Py_ssize_t));
    PyObject **fns = PyMem_Calloc((size_t)width, 2 * sizeof(PyObject *));
    PyObject *spans = nargs == 7 && args[6] != Py_None ? args[6] : NULL;
    SpanAction *actions = NULL;
    Out scratch = {NULL, 0, 0};
    Grown out = {NULL, 0};
    PyObject *cuts = NULL, *result = NULL;
    if (modes == NULL || bounds == NULL || fns == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < width; i++) {
        PyObject *spec = PyTuple_GET_ITEM(decoders, i);
        if (!PyTuple_CheckExact(spec) || PyTuple_GET_SIZE(spec) != 3) {
            PyErr_SetString(PyExc_TypeError, "transform_batch: each decoder is (mode, decoder, plain)");
            goto done;
        }
        long mode = PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
        if (mode == -1 && PyErr_Occurred())
            goto done;
        if (mode < DECODE_KEEP || mode > DECODE_INT || (mode == DECODE_PYTHON && PyTuple_GET_ITEM(spec, 1) == Py_None)) {
            PyErr_SetString(PyExc_ValueError, "transform_batch: unknown decoder mode");
            goto done;
        }
        modes[i] = (int)mode;
        fns[i] = PyTuple_GET_ITEM(spec, 1);
        int plain = PyObject_IsTrue(PyTuple_GET_ITEM(spec, 2));
        if (plain < 0)
            goto done;
        modes[width + i] = plain;
    }
    if (spans != NULL) {
        if (!PyTuple_CheckExact(spans) || PyTuple_GET_SIZE(spans) != width) {
            PyErr_SetString(PyExc_TypeError, "transform_batch: spans is a tuple of the width");
            goto done;
        }
        actions = PyMem_Calloc((size_t)width, sizeof(SpanAction));
        if (actions == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        for (Py_ssize_t i = 0; i < width; i++) {
            PyObject *spec = PyTuple_GET_ITEM(spans, i);
            if (spec == Py_None) {  /* a column no function reads: decoding text or a blob cannot fail */
                if (modes[i] != DECODE_KEEP && modes[i] != DECODE_TEXT && modes[i] != DECODE_BLOB)
                    goto bad_span;
                continue;
            }
            if (!PyTuple_CheckExact(spec) || PyTuple_GET_SIZE(spec) != 3)
                goto bad_span;
            long code = PyLong_AsLong(PyTuple_GET_ITEM(spec, 0));
            Py_ssize_t limit = PyLong_AsSsize_t(PyTuple_GET_ITEM(spec, 2));
            if (PyErr_Occurred())
                goto done;
            /* a value function gets what transform_row decodes: str or bytes here */
            if ((code != SPAN_CALL && code != SPAN_SCRUB) || (modes[i] != DECODE_TEXT && modes[i] != DECODE_BLOB)
                    || (code == SPAN_SCRUB && modes[i] != DECODE_TEXT))
                goto bad_span;
            actions[i].code = (int)code;
            actions[i].fn = PyTuple_GET_ITEM(spec, 1);
            actions[i].limit = limit;
            if (code == SPAN_CALL && modes[i] == DECODE_TEXT)
                pseudonym_of(actions[i].fn, &actions[i].pseudonym, &actions[i].kind, &actions[i].pseudonym_limit);
        }
    }
    out.bytes = PyBytes_FromStringAndSize(NULL, size + size / 8 + 64);  /* sanitized values may grow */
    cuts = PyList_New(0);
    if (out.bytes == NULL || cuts == NULL)
        goto done;
    Py_ssize_t rows = 0;
    for (Py_ssize_t at = 0; at < size; rows++) {
        const char *newline = memchr(d + at, '\n', (size_t)(size - at));
        Py_ssize_t end = newline - d;  /* data ends with a newline: never NULL */
        Py_ssize_t start = out.len;
        int spanned = actions == NULL ? 0 : span_row(d + at, end - at, width, actions, modes, modes + width, value_field,
                                                      columns, bounds, bounds + width, fns + width, &scratch, &out);
        if (spanned < 0)
            goto done;
        if (!spanned && transform_row(d + at, end - at, width, transform, fns, modes, modes + width, value_field,
                                      columns, bounds, bounds + width, fns + width, &out) < 0)
            goto done;
        Py_ssize_t n = out.len - start;
        if ((unsigned long long)crc32_of((const unsigned char *)PyBytes_AS_STRING(out.bytes) + start, (size_t)n)
                < (unsigned long long)n * scale) {
            PyObject *cut = PyLong_FromSsize_t(out.len);
            if (cut == NULL || PyList_Append(cuts, cut) < 0) {
                Py_XDECREF(cut);
                goto done;
            }
            Py_DECREF(cut);
        }
        at = end + 1;
    }
    if (_PyBytes_Resize(&out.bytes, out.len) < 0)
        goto done;
    result = Py_BuildValue("(OOn)", out.bytes, cuts, rows);
    goto done;
bad_span:
    PyErr_SetString(PyExc_ValueError, "transform_batch: a span is None (a column no function reads, not an "
                    "integer) or (code, fn, limit) on a text or blob column");
done:
    for (Py_ssize_t i = 0; actions != NULL && i < width; i++)
        Py_XDECREF(actions[i].pseudonym);
    PyMem_Free(actions);
    PyMem_Free(scratch.buf);
    Py_XDECREF(out.bytes);
    Py_XDECREF(cuts);
    PyMem_Free(modes);
    PyMem_Free(bounds);
    PyMem_Free(fns);
    return result;
}

/* ---- HMAC-SHA256 with the pads hashed once: actions.Keyed.digest in one call --------------------
 *
 * A plain SHA-256 (FIPS 180-4), so the module needs no library; the HMAC's inner and outer pads are
 * compressed once per secret (sha256_pad_state) and each digest starts from those states. Checked
 * against hmac.digest (tests/sanitize/test_keyed_compiled.py).
 */

static const uint32_t SHA256_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};
static const uint32_t SHA256_H0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void
sha256_block_portable(uint32_t h[8], const unsigned char *block)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 | (uint32_t)block[4 * i + 2] << 8
               | (uint32_t)block[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = k + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + SHA256_K[i] + w[i];
        uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += k;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* The same compression with the x86 SHA extensions (most x86-64 CPUs since 2017), chosen at
   import when the CPU has them (CPUID leaf 7, EBX bit 29, with SSSE3 and SSE4.1): about a fifth
   of the portable code's cycles. Same bytes: tests/sanitize/test_keyed_compiled.py compares the
   digests with hmac.digest on whichever the machine runs. */
#define HAVE_SHA_NI 1

__attribute__((target("sha,sse4.1,ssse3")))
static void
sha256_block_ni(uint32_t h[8], const unsigned char *block)
{
    const __m128i byte_swap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i tmp = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[0]), 0xB1);  /* CDAB */
    __m128i state1 = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&h[4]), 0x1B);  /* EFGH */
    __m128i state0 = _mm_alignr_epi8(tmp, state1, 8);  /* ABEF */
    state1 = _mm_blend_epi16(state1, tmp, 0xF0);  /* CDGH */
    const __m128i abef = state0, cdgh = state1;
    __m128i w[16];
    for (int g = 0; g < 16; g++) {
        if (g < 4) {
            w[g] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(block + 16 * g)), byte_swap);
        } else {
            __m128i m = _mm_sha256msg1_epu32(w[g - 4], w[g - 3]);
            m = _mm_add_epi32(m, _mm_alignr_epi8(w[g - 1], w[g - 2], 4));
            w[g] = _mm_sha256msg2_epu32(m, w[g - 1]);
        }
        __m128i msg = _mm_add_epi32(w[g], _mm_loadu_si128((const __m128i *)&SHA256_K[4 * g]));
        state1 = _mm_sha256rnds2_epu32(state1, state0, msg);
        state0 = _mm_sha256rnds2_epu32(state0, state1, _mm_shuffle_epi32(msg, 0x0E));
    }
    state0 = _mm_add_epi32(state0, abef);
    state1 = _mm_add_epi32(state1, cdgh);
    tmp = _mm_shuffle_epi32(state0, 0x1B);  /* FEBA */
    state1 = _mm_shuffle_epi32(state1, 0xB1);  /* DCHG */
    _mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(tmp, state1, 0xF0));  /* DCBA */
    _mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(state1, tmp, 8));  /* HGFE */
}

static int
cpu_has_sha_ni(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSSE3) || !(c & bit_SSE4_1))
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b >> 29) & 1;
}
#endif

static void (*sha256_block)(uint32_t h[8], const unsigned char *block) = sha256_block_portable;

typedef struct {
    uint32_t h[8];
    unsigned char buf[64];
    size_t used;
    uint64_t total;  /* bytes hashed, the pad block included */
} Sha256;

static void
sha256_update(Sha256 *s, const unsigned char *data, size_t n)
{
    s->total += n;
    if (s->used) {
        size_t take = 64 - s->used < n ? 64 - s->used : n;
        memcpy(s->buf + s->used, data, take);
        s->used += take;
        data += take;
        n -= take;
        if (s->used < 64)
            return;
        sha256_block(s->h, s->buf);
        s->used = 0;
    }
    while (n >= 64) {
        sha256_block(s->h, data);
        data += 64;
        n -= 64;
    }
    memcpy(s->buf, data, n);
    s->used = n;
}

static void
sha256_final(Sha256 *s, unsigned char out[32])
{
    uint64_t bits = s->total * 8;
    s->buf[s->used++] = 0x80;  /* used < 64 between updates: there is room for it */
    if (s->used > 56) {  /* no room for the length: one more block */
        memset(s->buf + s->used, 0, 64 - s->used);
        sha256_block(s->h, s->buf);
        s->used = 0;
    }
    memset(s->buf + s->used, 0, 56 - s->used);
    for (int i = 0; i < 8; i++)
        s->buf[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
    sha256_block(s->h, s->buf);
    s->used = 0;
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char)(s->h[i] >> 24);
        out[4 * i + 1] = (unsigned char)(s->h[i] >> 16);
        out[4 * i + 2] = (unsigned char)(s->h[i] >> 8);
        out[4 * i + 3] = (unsigned char)s->h[i];
    }
}

/* sha256_pad_state(block) -> the 32-byte state after compressing one 64-byte block */
static PyObject *
sha256_pad_state(PyObject *module, PyObject *block)
{
    if (!PyBytes_CheckExact(block) || PyBytes_GET_SIZE(block) != 64) {
        PyErr_SetString(PyExc_ValueError, "sha256_pad_state takes one 64-byte block");
        return NULL;
    }
    uint32_t h[8];
    memcpy(h, SHA256_H0, sizeof h);
    sha256_block(h, (const unsigned char *)PyBytes_AS_STRING(block));
    return PyBytes_FromStringAndSize((const char *)h, sizeof h);
}

static int
load_state(PyObject *state, Sha256 *s)
{
    if (!PyBytes_CheckExact(state) || PyBytes_GET_SIZE(state) != 32) {
        PyErr_SetString(PyExc_ValueError, "an HMAC pad state is 32 bytes from sha256_pad_state");
        return -1;
    }
    memcpy(s->h, PyBytes_AS_STRING(state), 32);
    s->used = 0;
    s->total = 64;
    return 0;
}

/* hmac_digest(inner_state, outer_state, domain, value) -> HMAC-SHA256(secret, domain + value);
   a str value is hashed as its UTF-8 bytes with surrogates passed through (as Keyed.digest) */
static PyObject *
hmac_digest(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "hmac_digest(inner_state, outer_state, domain, value)");
        return NULL;
    }
    Sha256 inner, outer;
    if (load_state(args[0], &inner) < 0 || load_state(args[1], &outer) < 0)
        return NULL;
    if (!PyBytes_CheckExact(args[2])) {
        PyErr_SetString(PyExc_TypeError, "the domain is bytes");
        return NULL;
    }
    PyObject *value = args[3], *encoded = NULL;
    Py_buffer view = {NULL};
    const char *data;
    Py_ssize_t size;
    if (PyBytes_CheckExact(value)) {
        data = PyBytes_AS_STRING(value);
        size = PyBytes_GET_SIZE(value);
    } else if (PyUnicode_CheckExact(value) && PyUnicode_IS_ASCII(value)) {
        data = (const char *)PyUnicode_1BYTE_DATA(value);
        size = PyUnicode_GET_LENGTH(value);
    } else if (PyUnicode_Check(value)) {
        encoded = PyUnicode_AsEncodedString(value, "utf-8", "surrogatepass");
        if (encoded == NULL)
            return NULL;
        data = PyBytes_AS_STRING(encoded);
        size = PyBytes_GET_SIZE(encoded);
    } else {  /* any other bytes-like object, as hashlib's update takes it */
        if (PyObject_GetBuffer(value, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        data = view.buf;
        size = view.len;
    }
    unsigned char digest[32];
    sha256_update(&inner, (const unsigned char *)PyBytes_AS_STRING(args[2]), (size_t)PyBytes_GET_SIZE(args[2]));
    sha256_update(&inner, (const unsigned char *)data, (size_t)size);
    Py_XDECREF(encoded);
    if (view.obj != NULL)
        PyBuffer_Release(&view);
    sha256_final(&inner, digest);
    sha256_update(&outer, digest, 32);
    sha256_final(&outer, digest);
    return PyBytes_FromStringAndSize((const char *)digest, 32);
}

/* --- pseudonyms and scrub's gate, called per value -------------------------------------------
 * actions.text_action's value function for the email, username and ip (IPv4) builders, for an
 * ASCII str or bytes value (the bytes form for a PHP key's rewrite): the same strip, casefold
 * (lower case on ASCII), staff check, HMAC and formatting as the Python builders, without the
 * Python frames or the result cache (a cache hit and a digest cost about the same here). Any
 * other value, and a result over the column's limit (fit_with_tag's shortening), go to the
 * Python function given as `fallback`, which gives the same value
 * (tests/sanitize/test_pseudonym_compiled.py). */

enum { PSEUDO_EMAIL = 0, PSEUDO_USERNAME = 1, PSEUDO_IPV4 = 2, PSEUDO_URL = 3 };
#define NORM_MAX 512  /* longer values go to Python */

static int
ascii_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);  /* str.isspace on ASCII */
}

static int
ascii_bytes(const char *s, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return 0;
    return 1;
}

/* an ASCII str from the tuple: its bytes, or NULL */
static const char *
ascii_item(PyObject *tuple, Py_ssize_t i, Py_ssize_t *len)
{
    PyObject *item = PyTuple_GET_ITEM(tuple, i);
    if (!PyUnicode_CheckExact(item) || !PyUnicode_IS_ASCII(item))
        return NULL;
    *len = PyUnicode_GET_LENGTH(item);
    return (const char *)PyUnicode_1BYTE_DATA(item);
}

static PyObject *
call_fallback(PyObject *fallback, PyObject *value)
{
    PyObject *args[1] = {value};
    return PyObject_Vectorcall(fallback, args, 1, NULL);
}

static const char HEX[] = "0123456789abcdef";

/* the checks shared by the per-value functions: (spec, fallback, value) with a spec tuple of
   `size` items whose items kind_at and limit_at are integers; 0 with an exception set if not */
static int
value_args(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t size, const char *usage, Py_ssize_t kind_at,
           Py_ssize_t limit_at, long *kind, Py_ssize_t *limit)
{
    if (nargs != 3 || !PyTuple_CheckExact(args[0]) || PyTuple_GET_SIZE(args[0]) != size) {
        PyErr_SetString(PyExc_TypeError, usage);
        return 0;
    }
    *kind = PyLong_AsLong(PyTuple_GET_ITEM(args[0], kind_at));
    *limit = PyLong_AsSsize_t(PyTuple_GET_ITEM(args[0], limit_at));
    return !PyErr_Occurred();
}

/* str.strip on ASCII: the span [*start, *end) of s without the whitespace around it */
static void
strip_span(const char *s, Py_ssize_t n, Py_ssize_t *start, Py_ssize_t *end)
{
    *start = 0;
    *end = n;
    while (*start < *end && ascii_space((unsigned char)s[*start]))
        (*start)++;
    while (*end > *start && ascii_space((unsigned char)s[*end - 1]))
        (*end)--;
}

/* str.casefold on ASCII */
static void
lower_ascii(const char *s, Py_ssize_t n, char *out)
{
    for (Py_ssize_t i = 0; i < n; i++)
        out[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
}

/* 1 when the casefolded ASCII text is one of the staff values (a frozenset or None), 0 when
   not, -1 with an exception set */
static int
is_staff(PyObject *keep, const char *norm, Py_ssize_t n)
{
    if (keep == Py_None || PySet_GET_SIZE(keep) == 0)
        return 0;
    PyObject *key = PyUnicode_DecodeASCII(norm, n, NULL);
    if (key == NULL)
        return -1;
    int found = PySet_Contains(keep, key);
    Py_DECREF(key);
    return found;
}

/* HMAC-SHA256 from spec's pad states (items 1 and 2) of domain (with its \0) + data */
static int
keyed_hash(PyObject *spec, const char *domain, const char *data, Py_ssize_t n, unsigned char d[32])
{
    Sha256 inner, outer;
    if (load_state(PyTuple_GET_ITEM(spec, 1), &inner) < 0 || load_state(PyTuple_GET_ITEM(spec, 2), &outer) < 0)
        return -1;
    sha256_update(&inner, (const unsigned char *)domain, strlen(domain) + 1);
    sha256_update(&inner, (const unsigned char *)data, (size_t)n);
    sha256_final(&inner, d);
    sha256_update(&outer, d, 32);
    sha256_final(&outer, d);
    return 0;
}

/* actions.tag: the last 8 bytes of the digest in hex, 15 characters */
static void
append_tag(char *out, Py_ssize_t *len, const unsigned char *d)
{
    for (int i = 0; i < 15; i++) {
        unsigned char b = d[24 + i / 2];
        out[(*len)++] = HEX[i % 2 ? b & 15 : b >> 4];
    }
}

/* actions.pick: words[(d[at] << 8 | d[at + 1]) % len(words)] appended; 0 when it does not fit
   or is not an ASCII str (cap: out's size, 32 bytes kept free after the word) */
static int
append_pick(char *out, Py_ssize_t *len, Py_ssize_t cap, PyObject *words, const unsigned char *d, int at)
{
    if (!PyTuple_CheckExact(words) || PyTuple_GET_SIZE(words) == 0)
        return 0;
    Py_ssize_t n;
    const char *word = ascii_item(words, (d[at] << 8 | d[at + 1]) % PyTuple_GET_SIZE(words), &n);
    if (word == NULL || *len + n + 32 > cap)
        return 0;
    memcpy(out + *len, word, (size_t)n);
    *len += n;
    return 1;
}

/* pseudonym(spec, fallback, value); spec = (kind, inner_state, outer_state, first_names,
   last_names, suffix, limit, keep): kind 0 email, 1 username, 2 ip (IPv4 form), 3 url (ASCII
   values: the scheme is read with str.lower); names lower case; suffix "@domain" for email, the
   host for url; limit -1 for none; keep a frozenset of casefolded staff values or None */

/* The pseudonym of a value whose normalized form (strip, casefold, as UTF-8) is normalized[0:nn],
   written at out (room for PSEUDO_OUT bytes): its length; PSEUDO_FALLBACK when the Python function must
   make it, PSEUDO_ERROR with an exception set. s[0:n] is the ASCII value itself (a URL's scheme),
   or NULL for a non-ASCII value (never a URL here) */
static Py_ssize_t
pseudonym_format(PyObject *spec, long kind, Py_ssize_t limit, const char *normalized, Py_ssize_t nn,
                 const char *s, Py_ssize_t n, char *out)
{
    static const char *domains[] = {"email", "username", "ip", "url"};
    unsigned char d[32];
    if (keyed_hash(spec, domains[kind], normalized, nn, d) < 0)
        return PSEUDO_ERROR;
    Py_ssize_t len = 0;
    if (kind == PSEUDO_IPV4) {
        static const char *nets[] = {"192.0.2", "198.51.100", "203.0.113"};
        const char *net = nets[d[0] % 3];
        len = (Py_ssize_t)strlen(net);
        memcpy(out, net, (size_t)len);
        out[len++] = '.';
        len += decimal_text(out + len, 1 + d[1] % 254);
    } else if (kind == PSEUDO_URL) {  /* url_builder: scheme://host/first-last-tag(d, 8) */
        PyObject *host = PyTuple_GET_ITEM(spec, 5);
        char scheme[7];
        lower_ascii(s, n < 7 ? n : 7, scheme);
        int http = n >= 7 && memcmp(scheme, "http://", 7) == 0;
        if (!PyUnicode_CheckExact(host) || !PyUnicode_IS_ASCII(host) || PyUnicode_GET_LENGTH(host) > 128)
            return PSEUDO_FALLBACK;
        len = snprintf(out, PSEUDO_OUT, "%s://%s/", http ? "http" : "https", (const char *)PyUnicode_1BYTE_DATA(host));
        int ok = append_pick(out, &len, PSEUDO_OUT, PyTuple_GET_ITEM(spec, 3), d, 0);
        out[len++] = '-';
        ok = ok && append_pick(out, &len, PSEUDO_OUT, PyTuple_GET_ITEM(spec, 4), d, 2);
        out[len++] = '-';
        append_tag(out, &len, d);
        len -= 7;  /* tag(d, 8): the first 8 of its 15 characters */
        if (!ok)
            return PSEUDO_FALLBACK;
    } else {
        PyObject *firsts = PyTuple_GET_ITEM(spec, 3), *lasts = PyTuple_GET_ITEM(spec, 4);
        if (!PyTuple_CheckExact(firsts) || !PyTuple_CheckExact(lasts) || PyTuple_GET_SIZE(firsts) == 0
            || PyTuple_GET_SIZE(lasts) == 0) {
            PyErr_SetString(PyExc_TypeError, "the name lists are non-empty tuples");
            return PSEUDO_ERROR;
        }
        Py_ssize_t first_len = 0, last_len = 0, suffix_len = 0;
        const char *first = ascii_item(firsts, (d[0] << 8 | d[1]) % PyTuple_GET_SIZE(firsts), &first_len);
        const char *last = ascii_item(lasts, (d[2] << 8 | d[3]) % PyTuple_GET_SIZE(lasts), &last_len);
        const char *suffix = "";
        if (kind == PSEUDO_EMAIL) {
            PyObject *suffix_obj = PyTuple_GET_ITEM(spec, 5);
            if (PyUnicode_CheckExact(suffix_obj) && PyUnicode_IS_ASCII(suffix_obj)) {
                suffix = (const char *)PyUnicode_1BYTE_DATA(suffix_obj);
                suffix_len = PyUnicode_GET_LENGTH(suffix_obj);
            } else {
                first = NULL;
            }
        }
        if (first == NULL || last == NULL || first_len + last_len + suffix_len + 17 > (Py_ssize_t)PSEUDO_OUT)
            return PSEUDO_FALLBACK;
        memcpy(out, first, (size_t)first_len);
        len = first_len;
        if (kind == PSEUDO_EMAIL)
            out[len++] = '.';
        memcpy(out + len, last, (size_t)last_len);
        len += last_len;
        out[len++] = kind == PSEUDO_EMAIL ? '.' : '_';
        append_tag(out, &len, d);
        memcpy(out + len, suffix, (size_t)suffix_len);
        len += suffix_len;
    }
    if (limit >= 0 && len > limit)
        return PSEUDO_FALLBACK;  /* shortened by fit_with_tag, or cut, in Python */
    return len;
}


/* The pseudonym of the ASCII value s[0:n] at out (room for PSEUDO_OUT bytes): its length; PSEUDO_KEEP
   when the value stays (empty, or a staff value), PSEUDO_FALLBACK, or PSEUDO_ERROR */
static Py_ssize_t
pseudonym_ascii(PyObject *spec, long kind, Py_ssize_t limit, const char *s, Py_ssize_t n, char *out)
{
    if (n == 0)  /* text_action: an empty value stays empty */
        return PSEUDO_KEEP;
    if (kind == PSEUDO_IPV4 && memchr(s, ':', (size_t)n) != NULL)
        return PSEUDO_FALLBACK;  /* IPv6: canonical form through ipaddress */
    Py_ssize_t start, end;
    strip_span(s, n, &start, &end);
    if (end - start > NORM_MAX)
        return PSEUDO_FALLBACK;
    char norm[NORM_MAX];
    lower_ascii(s + start, end - start, norm);
    int staff = is_staff(PyTuple_GET_ITEM(spec, 7), norm, end - start);
    if (staff != 0)  /* a staff account's value: kept */
        return staff < 0 ? PSEUDO_ERROR : PSEUDO_KEEP;
    return pseudonym_format(spec, kind, limit, norm, end - start, s, n, out);
}

/* value, fallback(value), the pseudonym's str (bytes for a bytes value) or NULL, by what the
   functions above returned */
static PyObject *
pseudonym_result(Py_ssize_t len, const char *out, int as_bytes, PyObject *fallback, PyObject *value)
{
    if (len == PSEUDO_ERROR)
        return NULL;
    if (len == PSEUDO_KEEP) {
        Py_INCREF(value);
        return value;
    }
    if (len == PSEUDO_FALLBACK)
        return call_fallback(fallback, value);
    return as_bytes ? PyBytes_FromStringAndSize(out, len) : PyUnicode_DecodeASCII(out, len, NULL);
}

static PyObject *
pseudonym(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    long kind;
    Py_ssize_t limit;
    if (!value_args(args, nargs, 8, "pseudonym(spec, fallback, value)", 0, 6, &kind, &limit))
        return NULL;
    PyObject *spec = args[0], *fallback = args[1], *value = args[2];
    if (kind < 0 || kind > 3) {
        PyErr_SetString(PyExc_ValueError, "unknown pseudonym kind");
        return NULL;
    }
    PyObject *keep = PyTuple_GET_ITEM(spec, 7);
    int check_keep = keep != Py_None && PySet_GET_SIZE(keep) > 0;
    char out[PSEUDO_OUT];
    if (PyUnicode_CheckExact(value) && PyUnicode_IS_ASCII(value))
        return pseudonym_result(pseudonym_ascii(spec, kind, limit, (const char *)PyUnicode_1BYTE_DATA(value),
                                                PyUnicode_GET_LENGTH(value), out), out, 0, fallback, value);
    if (PyBytes_CheckExact(value) && ascii_bytes(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value)))
        return pseudonym_result(pseudonym_ascii(spec, kind, limit, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value),
                                                out), out, 1, fallback, value);
    if (PyUnicode_CheckExact(value) || PyBytes_CheckExact(value)) {
        /* non-ASCII: str.strip and str.casefold themselves (full Unicode rules), the rest as for
           ASCII; bytes are decoded as the php action's keyed_value does (UTF-8, surrogateescape) */
        int as_bytes = PyBytes_CheckExact(value);
        PyObject *text = as_bytes ? PyUnicode_DecodeUTF8(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value), "surrogateescape")
                                  : (Py_INCREF(value), value);
        if (text == NULL)
            return NULL;
        if ((kind == PSEUDO_IPV4 && PyUnicode_FindChar(text, ':', 0, PyUnicode_GET_LENGTH(text), 1) != -1)
            || kind == PSEUDO_URL) {
            Py_DECREF(text);  /* IPv6: canonical form through ipaddress; a URL's scheme by str.lower */
            return call_fallback(fallback, value);
        }
        PyObject *stripped = PyObject_CallMethod(text, "strip", NULL);
        Py_DECREF(text);
        if (stripped == NULL)
            return NULL;
        PyObject *folded = PyObject_CallMethod(stripped, "casefold", NULL);
        Py_DECREF(stripped);
        if (folded == NULL)
            return NULL;
        if (check_keep) {
            int found = PySet_Contains(keep, folded);
            if (found != 0) {
                Py_DECREF(folded);
                if (found < 0)
                    return NULL;
                Py_INCREF(value);  /* a staff account's value: kept */
                return value;
            }
        }
        PyObject *normalized = PyUnicode_AsEncodedString(folded, "utf-8", "surrogatepass");  /* what is hashed */
        Py_DECREF(folded);
        if (normalized == NULL)
            return NULL;
        Py_ssize_t len = pseudonym_format(spec, kind, limit, PyBytes_AS_STRING(normalized), PyBytes_GET_SIZE(normalized),
                                          NULL, 0, out);
        Py_DECREF(normalized);
        return pseudonym_result(len, out, as_bytes, fallback, value);
    }
    return call_fallback(fallback, value);
}

/* scrub_gate(fallback, limit, value): value itself when it is a str of at most limit characters
   (limit -1: any) that scrub returns unchanged (scrub_keeps); fallback(value) otherwise */
static PyObject *
scrub_gate(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "scrub_gate(fallback, limit, value)");
        return NULL;
    }
    PyObject *value = args[2];
    if (PyUnicode_CheckExact(value)) {
        Py_ssize_t limit = PyLong_AsSsize_t(args[1]);
        if (limit == -1 && PyErr_Occurred())
            return NULL;
        Py_ssize_t n = PyUnicode_GET_LENGTH(value);
        if ((limit < 0 || n <= limit) && scrub_keeps(PyUnicode_KIND(value), PyUnicode_DATA(value), n, 0)) {
            Py_INCREF(value);
            return value;
        }
    }
    return call_fallback(args[0], value);
}

/* --- guess, for an ASCII str value ------------------------------------------------------------
 * actions.guess_builder's value function (wrapped by text_action: an empty value stays empty) on
 * a text column without a uniqueness tag, for the cases it can be sure of, in the order guess
 * tests them: blank or a small number (kept), an e-mail address (EMAIL_RE's full match, checked
 * here character class by character class; the staff check; the email pseudonym), and text with
 * no decimal digit, no ':', not exactly three dots and not starting "www." (none of the IP, URL,
 * ISO date, number or phone tests can match it: each needs a digit, a ':' or such a start): the
 * hint's pseudonym (name, first_name, last_name, address) or lorem of the same length. Anything
 * else (non-ASCII text, bytes, an address guess does not take as one, anything with a digit, a
 * result over the column's limit that Python would cut or shorten) goes to `fallback`, the Python
 * value function with its cache (tests/sanitize/test_guess_compiled.py compares both). */

enum { GUESS_TEXT = 0, GUESS_NAME = 1, GUESS_FIRST_NAME = 2, GUESS_LAST_NAME = 3, GUESS_ADDRESS = 4 };
#define GUESS_OUT_MAX 512

static int
is_alnum_ascii(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int
is_alpha_ascii(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* detect.EMAIL_RE.fullmatch(t) for ASCII t: the lookbehind holds at the start; the local part
   [A-Za-z0-9][A-Za-z0-9._%+-]{0,63} up to the only '@'; the domain [A-Za-z0-9] then one or more
   "[A-Za-z0-9-]{0,62}." (a dot is in no class, so the groups are the dot-separated parts) then
   [A-Za-z]{2,24} to the end (\b holds after a letter at the end) */
static int
email_fullmatch(const char *t, Py_ssize_t n)
{
    const char *at = memchr(t, '@', (size_t)n);
    if (at == NULL)
        return 0;
    Py_ssize_t local = at - t;
    if (local < 1 || local > 64 || !is_alnum_ascii(t[0]))
        return 0;
    for (Py_ssize_t i = 1; i < local; i++) {
        char c = t[i];
        if (!is_alnum_ascii(c) && c != '.' && c != '_' && c != '%' && c != '+' && c != '-')
            return 0;
    }
    const char *d = at + 1;
    Py_ssize_t dn = n - local - 1;
    if (dn < 1 || !is_alnum_ascii(d[0]))
        return 0;
    Py_ssize_t last_dot = -1, part = 0;  /* part: characters of the current group (before its dot) */
    for (Py_ssize_t i = 1; i < dn; i++) {
        char c = d[i];
        if (c == '.') {
            last_dot = i;
            part = 0;
        } else if (is_alnum_ascii(c) || c == '-') {
            if (++part > 62 && memchr(d + i, '.', (size_t)(dn - i)) != NULL)
                return 0;  /* a group longer than 62 (the last part is checked below) */
        } else {
            return 0;
        }
    }
    if (last_dot < 0)
        return 0;
    Py_ssize_t tail = dn - last_dot - 1;
    if (tail < 2 || tail > 24)
        return 0;
    for (Py_ssize_t i = last_dot + 1; i < dn; i++)
        if (!is_alpha_ascii(d[i]))
            return 0;
    return 1;
}

/* lorem_builder: the corpus read round from a keyed start, size characters, the first upper case */
static PyObject *
guess_lorem(PyObject *spec, const char *s, Py_ssize_t n, Py_ssize_t size)
{
    PyObject *corpus = PyTuple_GET_ITEM(spec, 8);
    if (!PyUnicode_CheckExact(corpus) || !PyUnicode_IS_ASCII(corpus) || PyUnicode_GET_LENGTH(corpus) == 0) {
        PyErr_SetString(PyExc_TypeError, "the lorem corpus is a non-empty ASCII str");
        return NULL;
    }
    const char *text = (const char *)PyUnicode_1BYTE_DATA(corpus);
    Py_ssize_t length = PyUnicode_GET_LENGTH(corpus);
    unsigned char d[32];
    if (keyed_hash(spec, "text", s, n, d) < 0)
        return NULL;
    Py_ssize_t start = (Py_ssize_t)(((uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3]) % (uint32_t)length);
    PyObject *out = PyUnicode_New(size, 127);
    if (out == NULL)
        return NULL;
    char *o = (char *)PyUnicode_1BYTE_DATA(out);
    for (Py_ssize_t i = 0, at = start; i < size; i++) {
        o[i] = text[at];
        if (++at == length)
            at = 0;
    }
    if (size > 0 && o[0] >= 'a' && o[0] <= 'z')
        o[0] = (char)(o[0] - 32);
    return out;
}

/* what guess_value decides before any pseudonym */
enum { GUESS_KEEP, GUESS_EMAIL, GUESS_REST, GUESS_PYTHON };

/* guess's tests, in its order, on the stripped text (kind, data, tn): blank or _SMALL_NUMBER
   ([+-]?\d{1,3}, \d any Unicode decimal digit as re reads it) keep the value; '@' is an address
   when EMAIL_RE fully matches (ASCII text only), else Python; a ':', any decimal digit, exactly
   three dots, or a start that may be "www." (any non-ASCII character among the first three)
   may open the IP, URL, ISO date, number or phone tests: Python; anything else is the rest */
static int
guess_case(int kind, const void *data, Py_ssize_t tn, int ascii)
{
    Py_ssize_t sign = tn > 0 && (PyUnicode_READ(kind, data, 0) == '+' || PyUnicode_READ(kind, data, 0) == '-');
    int small = tn - sign >= 1 && tn - sign <= 3;
    for (Py_ssize_t i = sign; small && i < tn; i++)
        small = is_decimal(PyUnicode_READ(kind, data, i));
    if (tn == 0 || small)
        return GUESS_KEEP;
    Py_ssize_t dots = 0;
    int has_at = 0, opens = 0;  /* opens: a ':' or a decimal digit */
    for (Py_ssize_t i = 0; i < tn; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        has_at |= c == '@';
        opens |= c == ':' || is_decimal(c);
        dots += c == '.';
    }
    if (has_at)
        return ascii && email_fullmatch((const char *)data, tn) ? GUESS_EMAIL : GUESS_PYTHON;
    if (opens || dots == 3)
        return GUESS_PYTHON;
    if (tn >= 4 && PyUnicode_READ(kind, data, 3) == '.') {
        int www = 1;
        for (int i = 0; i < 3; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c >= 0x80)
                return GUESS_PYTHON;  /* (re's case-insensitive match is not ASCII's) */
            www &= (c | 32) == 'w';
        }
        if (www)
            return GUESS_PYTHON;
    }
    return GUESS_REST;
}

/* guess_value(spec, fallback, value); spec = (hint, inner_state, outer_state, first_lower,
   last_lower, first_names, last_names, street_suffixes, lorem_corpus, limit, keep, guess): with
   guess false, the hint's builder itself on every str value (the name, first_name, last_name,
   address and text actions: text_action's value function, no tests of what the value looks like) */
static PyObject *
guess_value(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    long hint;
    Py_ssize_t limit;
    if (!value_args(args, nargs, 12, "guess_value(spec, fallback, value)", 0, 9, &hint, &limit))
        return NULL;
    int guess = PyObject_IsTrue(PyTuple_GET_ITEM(args[0], 11));
    if (guess < 0)
        return NULL;
    PyObject *spec = args[0], *fallback = args[1], *value = args[2];
    if (!PyUnicode_CheckExact(value))
        return call_fallback(fallback, value);
    if (hint < GUESS_TEXT || hint > GUESS_ADDRESS) {
        PyErr_SetString(PyExc_ValueError, "unknown guess hint");
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(value);
    if (n == 0) {  /* text_action: an empty value stays empty */
        Py_INCREF(value);
        return value;
    }
    int fits = limit < 0 || n <= limit;  /* value[:limit] is the value itself */
    int ascii = PyUnicode_IS_ASCII(value);
    PyObject *stripped = NULL;  /* value.strip() of a non-ASCII value (full Unicode rules) */
    int kind;
    const void *data;
    Py_ssize_t tn;
    if (ascii) {
        const char *s = (const char *)PyUnicode_1BYTE_DATA(value);
        Py_ssize_t start, end;
        strip_span(s, n, &start, &end);
        kind = PyUnicode_1BYTE_KIND;
        data = s + start;
        tn = end - start;
    } else {
        stripped = PyObject_CallMethod(value, "strip", NULL);
        if (stripped == NULL)
            return NULL;
        kind = PyUnicode_KIND(stripped);
        data = PyUnicode_DATA(stripped);
        tn = PyUnicode_GET_LENGTH(stripped);
    }
    int found = guess ? guess_case(kind, data, tn, ascii) : GUESS_REST;
    if (found == GUESS_KEEP && fits) {
        Py_XDECREF(stripped);
        Py_INCREF(value);
        return value;
    }
    int lorem = found == GUESS_REST && hint == GUESS_TEXT;
    if (found == GUESS_KEEP || found == GUESS_PYTHON || (ascii && !lorem && tn > NORM_MAX)) {
        Py_XDECREF(stripped);  /* (value[:limit] of a kept value over the limit: in Python) */
        return call_fallback(fallback, value);
    }
    if (lorem) {  /* lorem of the value as it is */
        Py_XDECREF(stripped);
        Py_ssize_t size = limit >= 0 && limit < n ? limit : n;
        if (ascii)
            return guess_lorem(spec, (const char *)PyUnicode_1BYTE_DATA(value), n, size);
        PyObject *encoded = PyUnicode_AsEncodedString(value, "utf-8", "surrogatepass");
        if (encoded == NULL)
            return NULL;
        PyObject *out = guess_lorem(spec, PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded), size);
        Py_DECREF(encoded);
        return out;
    }
    /* the text stripped and casefolded, as UTF-8 with surrogates passed: what is hashed */
    char norm[NORM_MAX];
    const char *normalized = norm;
    Py_ssize_t nn = tn;
    PyObject *owned = NULL;
    if (ascii) {
        lower_ascii(data, tn, norm);
    } else {
        PyObject *folded = PyObject_CallMethod(stripped, "casefold", NULL);
        Py_DECREF(stripped);
        if (folded == NULL)
            return NULL;
        owned = PyUnicode_AsEncodedString(folded, "utf-8", "surrogatepass");
        Py_DECREF(folded);
        if (owned == NULL)
            return NULL;
        normalized = PyBytes_AS_STRING(owned);
        nn = PyBytes_GET_SIZE(owned);
    }
    int staff = found == GUESS_EMAIL ? is_staff(PyTuple_GET_ITEM(spec, 10), norm, tn) : 0;  /* (ASCII) */
    if (staff != 0) {  /* a staff address: value[:limit] */
        if (staff < 0)
            return NULL;
        if (!fits)
            return call_fallback(fallback, value);
        Py_INCREF(value);
        return value;
    }
    static const char *domains[] = {"text", "name", "first_name", "last_name", "address"};
    unsigned char d[32];
    int failed = keyed_hash(spec, found == GUESS_EMAIL ? "email" : domains[hint], normalized, nn, d);
    Py_XDECREF(owned);
    if (failed < 0)
        return NULL;
    char out[GUESS_OUT_MAX];
    Py_ssize_t len = 0;
    PyObject *firsts = PyTuple_GET_ITEM(spec, 5), *lasts = PyTuple_GET_ITEM(spec, 6);
    int ok;
    if (found == GUESS_EMAIL) {  /* email_builder, without a domain option */
        ok = append_pick(out, &len, sizeof out, PyTuple_GET_ITEM(spec, 3), d, 0);
        out[len++] = '.';
        ok = ok && append_pick(out, &len, sizeof out, PyTuple_GET_ITEM(spec, 4), d, 2);
        out[len++] = '.';
        append_tag(out, &len, d);
        memcpy(out + len, "@example.com", 12);  /* DEFAULT_EMAIL_DOMAIN */
        len += 12;
        if (!ok || (limit >= 0 && len > limit))
            return call_fallback(fallback, value);  /* fit_with_tag shortens it, in Python */
        return PyUnicode_DecodeASCII(out, len, NULL);
    }
    if (hint == GUESS_FIRST_NAME) {
        ok = append_pick(out, &len, sizeof out, firsts, d, 0);
    } else if (hint == GUESS_LAST_NAME) {
        ok = append_pick(out, &len, sizeof out, lasts, d, 0);
    } else if (hint == GUESS_NAME) {
        ok = append_pick(out, &len, sizeof out, firsts, d, 0);
        out[len++] = ' ';
        ok = ok && append_pick(out, &len, sizeof out, lasts, d, 2);
    } else {
        len = decimal_text(out, 1 + (d[4] << 8 | d[5]) % 9999);
        out[len++] = ' ';
        ok = append_pick(out, &len, sizeof out, lasts, d, 0);
        out[len++] = ' ';
        ok = ok && append_pick(out, &len, sizeof out, PyTuple_GET_ITEM(spec, 7), d, 2);
    }
    if (!ok)
        return call_fallback(fallback, value);
    if (limit >= 0 && len > limit)
        len = limit;  /* [:limit] */
    return PyUnicode_DecodeASCII(out, len, NULL);
}

/* ---- php_value's key cache ------------------------------------------------------------------ */

#define KEY_CACHE_NAME "clonekit._speedups.key_cache"

static void
key_cache_free(PyObject *capsule)
{
    KeyCache *cache = PyCapsule_GetPointer(capsule, KEY_CACHE_NAME);
    if (cache == NULL)
        return;
    for (int i = 0; i < cache->count; i++) {
        Py_XDECREF(cache->entries[i].fn);
        Py_XDECREF(cache->entries[i].spec);
    }
    PyMem_Free(cache);
}

/* key_cache() -> an empty cache for one php action (the 4th item of php_value's spec) */
static PyObject *
key_cache(PyObject *module, PyObject *unused)
{
    KeyCache *cache = PyMem_Calloc(1, sizeof(KeyCache));
    if (cache == NULL)
        return PyErr_NoMemory();
    PyObject *capsule = PyCapsule_New(cache, KEY_CACHE_NAME, key_cache_free);
    if (capsule == NULL)
        PyMem_Free(cache);
    return capsule;
}

/* When fn is functools.partial(pseudonym, spec, fallback) with a spec pseudonym reads: *spec (a new
   reference), *kind and *limit set; else *spec NULL (the function is then called as it is) */
static void
pseudonym_of(PyObject *fn, PyObject **spec, long *kind, Py_ssize_t *limit)
{
    *spec = NULL;
    PyObject *func = PyObject_GetAttrString(fn, "func");
    if (func == NULL) {  /* not a partial */
        PyErr_Clear();
        return;
    }
    int is_pseudonym = PyCFunction_Check(func) && PyCFunction_GET_FUNCTION(func) == (PyCFunction)(void (*)(void))pseudonym;
    Py_DECREF(func);
    if (!is_pseudonym)
        return;
    PyObject *args = PyObject_GetAttrString(fn, "args"), *keywords = PyObject_GetAttrString(fn, "keywords");
    if (args != NULL && keywords != NULL && PyTuple_CheckExact(args) && PyTuple_GET_SIZE(args) == 2
            && PyDict_Check(keywords) && PyDict_GET_SIZE(keywords) == 0) {
        PyObject *call[3] = {PyTuple_GET_ITEM(args, 0), Py_None, Py_None};
        if (value_args(call, 3, 8, "pseudonym(spec, fallback, value)", 0, 6, kind, limit) && *kind >= 0 && *kind <= 3) {
            *spec = call[0];
            Py_INCREF(*spec);
        }
    }
    PyErr_Clear();  /* not a partial of that shape, a spec it cannot read: the function is called as it is */
    Py_XDECREF(args);
    Py_XDECREF(keywords);
}

/* how a key's function can run on bytes: KEY_SCRUB (the scrub that keeps what scrub_keeps
   passes), KEY_PSEUDONYM (functools.partial(pseudonym, spec, fallback): its spec, kind, limit
   read into e), else KEY_CALL */
static void
key_how(Walk *w, PyObject *fn, KeyEntry *e)
{
    e->how = KEY_CALL;
    if (fn == w->keeps_plain) {
        e->how = KEY_SCRUB;
        return;
    }
    pseudonym_of(fn, &e->spec, &e->kind, &e->limit);
    e->how = e->spec != NULL ? KEY_PSEUDONYM : KEY_CALL;
}

/* The cached entry of the string key k[0:n], resolved on its first sight as call_rewrite resolves
   it (fns, then fn_for). NULL without an exception when the key is not cached (too long, the cache
   full), NULL with one when resolving failed */
static KeyEntry *
key_entry(Walk *w, const char *k, Py_ssize_t n)
{
    KeyCache *cache = w->cache;
    for (int i = 0; i < cache->count; i++) {
        KeyEntry *e = &cache->entries[i];
        if (e->len == n && memcmp(e->key, k, (size_t)n) == 0)
            return e;
    }
    if (n > KEY_MAX || cache->count >= KEY_CACHE_SIZE)
        return NULL;
    PyObject *key = PyBytes_FromStringAndSize(k, n);
    if (key == NULL)
        return NULL;
    PyObject *fn = PyDict_GetItemWithError(w->fns, key);  /* borrowed */
    if (fn != NULL) {
        Py_INCREF(fn);
    } else if (!PyErr_Occurred()) {
        PyObject *args[1] = {key};
        fn = PyObject_Vectorcall(w->rewrite, args, 1, NULL);
    }
    Py_DECREF(key);
    if (fn == NULL)
        return NULL;
    KeyEntry made;
    memset(&made, 0, sizeof made);
    key_how(w, fn, &made);
    /* the lookups above may run Python code, and another thread fill the cache meanwhile: the
       entry goes in whole, at the end, only while there is room */
    if (cache->count >= KEY_CACHE_SIZE) {
        Py_DECREF(fn);
        Py_XDECREF(made.spec);
        return NULL;
    }
    made.len = n;
    memcpy(made.key, k, (size_t)n);
    made.fn = fn;
    cache->entries[cache->count] = made;
    return &cache->entries[cache->count++];
}

/* The key's function on the value s[0:n] without a Python object, where it can: 1 with the new
   bytes at *new_s (s itself, or buf), 0 when the function must be called on a bytes object, -1
   with an exception. The same bytes as call_rewrite's result (tests/sanitize/test_php_key_cache.py) */
static int
key_value_bytes(const KeyEntry *e, const char *s, Py_ssize_t n, char *buf, const char **new_s, Py_ssize_t *new_n)
{
    *new_s = s;
    *new_n = n;
    if (e->how == KEY_SCRUB)
        return plain_text(s, n);
    if (e->how != KEY_PSEUDONYM || !ascii_bytes(s, n))
        return 0;
    Py_ssize_t len = pseudonym_ascii(e->spec, e->kind, e->limit, s, n, buf);
    if (len == PSEUDO_ERROR)
        return -1;
    if (len == PSEUDO_FALLBACK)
        return 0;
    if (len >= 0) {
        *new_s = buf;
        *new_n = len;
    }
    return 1;
}

/* php_value(spec, fallback, value): the php action on bytes, spec = (fns, fn_for, keeps_plain[, key_cache])
   as rewrite_strings_by_key takes them; what the walk hands over (and anything not bytes) goes
   to fallback, the Python value function (its cache, the Python walks, the not-serialized case) */
static PyObject *
php_value(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyTuple_CheckExact(args[0]) || PyTuple_GET_SIZE(args[0]) < 3 || PyTuple_GET_SIZE(args[0]) > 4
        || !PyDict_CheckExact(PyTuple_GET_ITEM(args[0], 0))) {
        PyErr_SetString(PyExc_TypeError, "php_value((fns, fn_for, keeps_plain[, key_cache]), fallback, value)");
        return NULL;
    }
    KeyCache *cache = NULL;
    if (PyTuple_GET_SIZE(args[0]) == 4 && (cache = PyCapsule_GetPointer(PyTuple_GET_ITEM(args[0], 3), KEY_CACHE_NAME)) == NULL)
        return NULL;
    PyObject *value = args[2];
    if (PyBytes_CheckExact(value)) {
        PyObject *keeps_plain = PyTuple_GET_ITEM(args[0], 2);
        Walk w = {PyTuple_GET_ITEM(args[0], 1), PyTuple_GET_ITEM(args[0], 0), keeps_plain == Py_None ? NULL : keeps_plain, 1,
                  cache};
        PyObject *done = walk(&w, value, 0);
        if (done != Py_None)
            return done;  /* the new bytes, or NULL with the rewrite's exception */
        Py_DECREF(done);
    }
    return call_fallback(args[1], value);
}

/* new (a reference taken) into position pos of *out, a copy of row made at the first change */
static int
set_field(PyObject **out, PyObject *row, Py_ssize_t pos, PyObject *new)
{
    if (*out == NULL) {
        Py_ssize_t width = PyTuple_GET_SIZE(row);
        *out = PyTuple_New(width);
        if (*out == NULL) {
            Py_DECREF(new);
            return -1;
        }
        for (Py_ssize_t j = 0; j < width; j++) {
            Py_INCREF(PyTuple_GET_ITEM(row, j));
            PyTuple_SET_ITEM(*out, j, PyTuple_GET_ITEM(row, j));
        }
    }
    Py_DECREF(PyTuple_GET_ITEM(*out, pos));
    PyTuple_SET_ITEM(*out, pos, new);
    return 0;
}

/* a position in a row of width fields, from a Python int: -1 with an exception when outside */
static Py_ssize_t
row_position(PyObject *number, Py_ssize_t width)
{
    Py_ssize_t at = PyLong_AsSsize_t(number);
    if (at < 0 || at >= width) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_IndexError, "tuple index out of range");
        return -1;
    }
    return at;
}

/* fn(value) into position pos of *out (set_field) unless fn returned value itself: 0, or -1 */
static int
apply_field(PyObject **out, PyObject *row, Py_ssize_t pos, PyObject *fn, PyObject *value)
{
    PyObject *new = call_fallback(fn, value);
    if (new == NULL)
        return -1;
    if (new == value) {
        Py_DECREF(new);
        return 0;
    }
    return set_field(out, row, pos, new);
}

/* transform_plain(spec, row): planner.compile_transform's row function for a table without
   staff accounts nor actions applying to NULL outside a `when`: spec = (((position, fn), ...),
   errors, on_error, python[, choosers]). Each non-NULL value of a column with one action goes
   through its fn; each chooser (a column whose action a `when` picks) gives the row's branch,
   applied as the Python loop does; the row itself comes back when every fn returned its value itself, else a new tuple. An
   exception of one of `errors` is replaced by on_error(its type's name), which raises the
   planner's message (no value shown); fallback rows that are not tuples go to spec's Python fn */
static PyObject *
transform_plain(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyTuple_CheckExact(args[0]) || PyTuple_GET_SIZE(args[0]) < 4 || PyTuple_GET_SIZE(args[0]) > 5
        || !PyTuple_CheckExact(PyTuple_GET_ITEM(args[0], 0))
        || (PyTuple_GET_SIZE(args[0]) == 5 && !PyTuple_CheckExact(PyTuple_GET_ITEM(args[0], 4)))) {
        PyErr_SetString(PyExc_TypeError, "transform_plain((pairs, errors, on_error, python[, choosers]), row)");
        return NULL;
    }
    PyObject *pairs = PyTuple_GET_ITEM(args[0], 0), *row = args[1];
    if (!PyTuple_CheckExact(row))
        return call_fallback(PyTuple_GET_ITEM(args[0], 3), row);
    Py_ssize_t width = PyTuple_GET_SIZE(row);
    PyObject *out = NULL;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(pairs); i++) {
        PyObject *pair = PyTuple_GET_ITEM(pairs, i);
        Py_ssize_t pos = row_position(PyTuple_GET_ITEM(pair, 0), width);
        if (pos < 0)
            goto fail;
        PyObject *value = PyTuple_GET_ITEM(row, pos);
        if (value != Py_None && apply_field(&out, row, pos, PyTuple_GET_ITEM(pair, 1), value) < 0)
            goto fail;
    }
    PyObject *choosers = PyTuple_GET_SIZE(args[0]) == 5 ? PyTuple_GET_ITEM(args[0], 4) : NULL;
    for (Py_ssize_t i = 0; choosers != NULL && i < PyTuple_GET_SIZE(choosers); i++) {
        /* (position, key positions or None, memo or None, choose): the branch remembered for
           the row's key columns, or choose(row) (which remembers it), as planner._chooser */
        PyObject *entry = PyTuple_GET_ITEM(choosers, i);
        if (!PyTuple_CheckExact(entry) || PyTuple_GET_SIZE(entry) != 4) {
            PyErr_SetString(PyExc_TypeError, "a chooser is (position, key positions, memo, choose)");
            goto fail;
        }
        Py_ssize_t pos = row_position(PyTuple_GET_ITEM(entry, 0), width);
        if (pos < 0)
            goto fail;
        PyObject *positions = PyTuple_GET_ITEM(entry, 1), *memo = PyTuple_GET_ITEM(entry, 2), *picked = NULL;
        if (memo != Py_None && PyDict_CheckExact(memo) && PyTuple_CheckExact(positions)) {
            PyObject *key = PyTuple_New(PyTuple_GET_SIZE(positions));
            if (key == NULL)
                goto fail;
            for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(positions); k++) {
                Py_ssize_t at = row_position(PyTuple_GET_ITEM(positions, k), width);
                if (at < 0) {
                    Py_DECREF(key);
                    goto fail;
                }
                Py_INCREF(PyTuple_GET_ITEM(row, at));
                PyTuple_SET_ITEM(key, k, PyTuple_GET_ITEM(row, at));
            }
            picked = PyDict_GetItemWithError(memo, key);
            Py_DECREF(key);
            if (picked == NULL && PyErr_Occurred())
                goto fail;
            Py_XINCREF(picked);
        }
        if (picked == NULL) {
            picked = call_fallback(PyTuple_GET_ITEM(entry, 3), row);
            if (picked == NULL)
                goto fail;
        }
        if (picked == Py_None) {  /* no branch: the value as it is */
            Py_DECREF(picked);
            continue;
        }
        if (!PyTuple_CheckExact(picked) || PyTuple_GET_SIZE(picked) != 2) {
            Py_DECREF(picked);
            PyErr_SetString(PyExc_TypeError, "a branch is (fn or None, applies to NULL)");
            goto fail;
        }
        PyObject *fn = PyTuple_GET_ITEM(picked, 0), *value = PyTuple_GET_ITEM(row, pos);
        int to_null = PyObject_IsTrue(PyTuple_GET_ITEM(picked, 1));
        if (to_null < 0) {
            Py_DECREF(picked);
            goto fail;
        }
        if (fn == Py_None || (value == Py_None && !to_null)) {  /* keep, or a NULL the action leaves */
            Py_DECREF(picked);
            continue;
        }
        int applied = apply_field(&out, row, pos, fn, value);
        Py_DECREF(picked);
        if (applied < 0)
            goto fail;
    }
    if (out == NULL) {
        Py_INCREF(row);
        return row;
    }
    return out;
fail:
    Py_XDECREF(out);
    if (PyErr_ExceptionMatches(PyTuple_GET_ITEM(args[0], 1))) {
        PyObject *type, *val, *tb;
        PyErr_Fetch(&type, &val, &tb);
        PyObject *name = PyObject_GetAttrString(type, "__name__");
        Py_XDECREF(type);
        Py_XDECREF(val);
        Py_XDECREF(tb);
        if (name == NULL)
            return NULL;
        PyObject *raised = call_fallback(PyTuple_GET_ITEM(args[0], 2), name);  /* raises */
        Py_DECREF(name);
        if (raised != NULL) {
            Py_DECREF(raised);
            PyErr_SetString(PyExc_RuntimeError, "on_error returned instead of raising");
        }
    }
    return NULL;
}

/* ---- rows as the parameters of a prepared multi-row INSERT (db.bind): the binary protocol's
 * values, which the server copies, instead of LOAD DATA text, which it reads byte by byte. */

static char *
lenenc_write(char *o, Py_ssize_t n)
{
    if (n < 251) {
        *o++ = (char)n;
        return o;
    }
    int width = n < 0x10000 ? 2 : n < 0x1000000 ? 3 : 8;
    *o++ = (char)(width == 2 ? 0xfc : width == 3 ? 0xfd : 0xfe);
    for (int i = 0; i < width; i++)
        *o++ = (char)(((unsigned long long)n >> (8 * i)) & 0xff);
    return o;
}

/* bind_rows(data, start, width, rows, limit) -> (values, nulls, end, count, full) */
static PyObject *
bind_rows(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "bind_rows(data, start, width, rows, limit)");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[1]), width = PyLong_AsSsize_t(args[2]);
    Py_ssize_t rows = PyLong_AsSsize_t(args[3]), limit = PyLong_AsSsize_t(args[4]);
    if (PyErr_Occurred())
        return NULL;
    if (width < 1 || rows < 1 || limit < 1 || start < 0 || rows > PY_SSIZE_T_MAX / 8 / width) {
        PyErr_SetString(PyExc_ValueError, "bind_rows: width, rows and limit are positive, start is not negative");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const char *d = view.buf;
    Py_ssize_t size = view.len;
    PyObject *result = NULL, *nulls = NULL;
    Grown values = {NULL, 0};
    if (start > size) {
        PyErr_SetString(PyExc_ValueError, "bind_rows: start is past the data");
        goto done;
    }
    values.bytes = PyBytes_FromStringAndSize(NULL, Py_MIN(limit, size - start) + 64);
    nulls = PyBytes_FromStringAndSize(NULL, (rows * width + 7) / 8);
    if (values.bytes == NULL || nulls == NULL)
        goto done;
    unsigned char *bits = (unsigned char *)PyBytes_AS_STRING(nulls);
    memset(bits, 0, (size_t)PyBytes_GET_SIZE(nulls));
    Py_ssize_t at = start, count = 0;
    int full = 0;
    while (count < rows) {
        const char *eol = memchr(d + at, '\n', (size_t)(size - at));
        if (eol == NULL)
            break;  /* no whole line left */
        Py_ssize_t row_start = values.len, line_end = eol - d, p = at;
        for (Py_ssize_t i = 0; i < width; i++) {
            const char *tab = memchr(d + p, '\t', (size_t)(line_end - p));
            if ((tab == NULL) != (i == width - 1)) {
                Py_ssize_t fields = 1;
                for (const char *q = d + at; (q = memchr(q, '\t', (size_t)(eol - q))) != NULL; q++)
                    fields++;
                PyErr_Format(PyExc_ValueError, "a row has %zd fields, not %zd", fields, width);
                goto done;
            }
            Py_ssize_t end = tab == NULL ? line_end : tab - d, n = end - p;
            Py_ssize_t param = count * width + i;
            if (is_null_field(d + p, n)) {
                bits[param >> 3] |= (unsigned char)(1u << (param & 7));
            } else {
                const char *s = d + p;
                Py_ssize_t len = n;
                const char *bs = memchr(s, '\\', (size_t)n);
                for (const char *q = bs; q != NULL && q + 1 < s + n; q = memchr(q + 2, '\\', (size_t)(s + n - q - 2)))
                    len--;  /* each escape pair is one byte (unescape_to) */
                char *o = grown_room(&values, len + 9);
                if (o == NULL)
                    goto done;
                char *v = lenenc_write(o, len);
                if (bs == NULL)
                    memcpy(v, s, (size_t)n);
                else
                    unescape_to(v, s, n);
                values.len += (v - o) + len;
            }
            p = end + 1;
        }
        if (values.len > limit) {  /* this row goes in the next statement (or alone: count 0) */
            values.len = row_start;
            for (Py_ssize_t i = 0; i < width; i++) {
                Py_ssize_t param = count * width + i;
                bits[param >> 3] &= (unsigned char)~(1u << (param & 7));
            }
            full = 1;
            break;
        }
        at = line_end + 1;
        count++;
    }
    if (_PyBytes_Resize(&values.bytes, values.len) < 0 || _PyBytes_Resize(&nulls, (count * width + 7) / 8) < 0)
        goto done;
    result = Py_BuildValue("(OOnni)", values.bytes, nulls, at, count, full);
done:
    Py_XDECREF(values.bytes);
    Py_XDECREF(nulls);
    PyBuffer_Release(&view);
    return result;
}

/* scrub_keeps_text(value) -> bool: the gate alone, for tests */
static PyObject *
scrub_keeps_text(PyObject *module, PyObject *value)
{
    if (PyUnicode_Check(value))
        return PyBool_FromLong(scrub_keeps(PyUnicode_KIND(value), PyUnicode_DATA(value), PyUnicode_GET_LENGTH(value), 0));
    if (PyBytes_Check(value))
        return PyBool_FromLong(plain_text(PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value)));
    PyErr_SetString(PyExc_TypeError, "scrub_keeps_text takes str or bytes");
    return NULL;
}

/* crc32(data) -> int: transform_batch's CRC-32 alone, for tests */
static PyObject *
crc32_bytes(PyObject *module, PyObject *data)
{
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    uint32_t crc = crc32_of((const unsigned char *)view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(crc);
}

static PyMethodDef methods[] = {
    {"rewrite_strings", (PyCFunction)(void (*)(void))rewrite_strings, METH_FASTCALL,
     "rewrite_strings(data, rewrite, nested) -> bytes | None\n\n"
     "phpserialize.rewrite_strings's walk: every string value passed through rewrite(key, value);\n"
     "data itself when nothing changed; None when the Python walks must decide."},
    {"rewrite_strings_by_key", (PyCFunction)(void (*)(void))rewrite_strings_by_key, METH_FASTCALL,
     "rewrite_strings_by_key(data, fns, fn_for, keeps_plain, nested) -> bytes | None\n\n"
     "The same with the rewrite chosen per key: fns.get(key) or fn_for(key), called with the value;\n"
     "keeps_plain (or None) is not called for an ASCII value without '@', ':' nor digit."},
    {"transform_batch", (PyCFunction)(void (*)(void))transform_batch, METH_FASTCALL,
     "transform_batch(data, transform, decoders, value_field, columns, scale[, spans]) -> (out, cuts, rows)\n\n"
     "db.capture._RowTransformer.batch: every tsv-1 line of data split, its fields decoded\n"
     "(decoders[i] = (mode, python decoder, plain encoding)), transformed, encoded again, joined;\n"
     "with spans (per column None or (code, fn, limit)), the actions applied field by field instead;\n"
     "cuts: the end offsets of the out lines where crc32(line) < len(line) * scale."},
    {"crc32", (PyCFunction)crc32_bytes, METH_O, "crc32(data) -> int\n\nzlib.crc32(data), as transform_batch computes it."},
    {"sha256_pad_state", (PyCFunction)sha256_pad_state, METH_O,
     "sha256_pad_state(block) -> bytes\n\nSHA-256's 32-byte state after one 64-byte block (an HMAC pad)."},
    {"hmac_digest", (PyCFunction)(void (*)(void))hmac_digest, METH_FASTCALL,
     "hmac_digest(inner_state, outer_state, domain, value) -> bytes\n\n"
     "HMAC-SHA256 of domain + value from the pads' states (value: bytes, or str as UTF-8 with surrogatepass)."},
    {"pseudonym", (PyCFunction)(void (*)(void))pseudonym, METH_FASTCALL,
     "pseudonym(spec, fallback, value) -> str | bytes\n\n"
     "The email, username or IPv4 pseudonym of an ASCII value, as actions.text_action gives it;\n"
     "fallback(value) for anything else."},
    {"scrub_gate", (PyCFunction)(void (*)(void))scrub_gate, METH_FASTCALL,
     "scrub_gate(fallback, limit, value) -> value | fallback(value)\n\n"
     "value itself when scrub surely returns it unchanged, else fallback(value)."},
    {"key_cache", (PyCFunction)key_cache, METH_NOARGS,
     "key_cache() -> capsule\n\nAn empty cache of a php action's keys: php_value's spec's 4th item."},
    {"php_value", (PyCFunction)(void (*)(void))php_value, METH_FASTCALL,
     "php_value((fns, fn_for, keeps_plain[, key_cache]), fallback, value) -> bytes\n\n"
     "The php action on bytes through the compiled walk; fallback(value) for what it hands over."},
    {"guess_value", (PyCFunction)(void (*)(void))guess_value, METH_FASTCALL,
     "guess_value(spec, fallback, value): the guess action on an ASCII str where it is sure, else fallback(value)"},
    {"transform_plain", (PyCFunction)(void (*)(void))transform_plain, METH_FASTCALL,
     "transform_plain((pairs, errors, on_error, python), row) -> row\n\n"
     "A table's row function when each rule is one action per column without conditions."},
    {"bind_rows", (PyCFunction)(void (*)(void))bind_rows, METH_FASTCALL,
     "bind_rows(data, start, width, rows, limit) -> (values, nulls, end, count, full)\n\n"
     "db.bind.bind_rows_python: the whole tsv-1 lines of data[start:], at most rows of them, as the\n"
     "parameters of a prepared INSERT (length-encoded values, NULL bitmap); full: the next line\n"
     "would have taken the values past limit bytes."},
    {"scrub_keeps_text", (PyCFunction)scrub_keeps_text, METH_O,
     "scrub_keeps_text(value) -> bool\n\nTrue when scrub surely returns value (str, or UTF-8 bytes) unchanged."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "clonekit._speedups",
    "Compiled fast paths of clonekit.sanitize (optional; the pure-Python code does the same).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
#ifdef HAVE_SHA_NI
    const char *off = getenv("CLONEKIT_NO_SHA_NI");  /* to measure or test the portable code */
    if (cpu_has_sha_ni() && (off == NULL || off[0] == '\0' || strcmp(off, "0") == 0))
        sha256_block = sha256_block_ni;
#endif
    crc32_init();
#ifdef HAVE_CRC_FOLD
    const char *no_fold = getenv("CLONEKIT_NO_PCLMUL");  /* to measure or test the table code */
    crc_fold_on = cpu_has_clmul() && (no_fold == NULL || no_fold[0] == '\0' || strcmp(no_fold, "0") == 0);
#endif
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddStringConstant(module, "sha256_impl",
                                   sha256_block == sha256_block_portable ? "portable" : "x86 SHA extensions") < 0
            || PyModule_AddStringConstant(module, "crc32_impl", crc_fold_on ? "carry-less multiplication" : "tables") < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
