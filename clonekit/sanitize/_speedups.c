/* clonekit.sanitize._speedups: the PHP-serialized walk of phpserialize.rewrite_strings, compiled.
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
#include <string.h>

#define MAX_DEPTH 64     /* phpserialize._MAX_DEPTH: arrays and objects inside one another */
#define MAX_NESTED 16    /* serialized strings inside serialized strings: deeper is handed over */
#define MAX_DIGITS 18    /* a length, count or integer key with more digits is handed over */

typedef struct {
    PyObject *rewrite;   /* rewrite(key, value) -> bytes; with fns: fn_for(key) -> fn */
    PyObject *fns;       /* dict: key -> fn(value) -> bytes, or NULL */
    PyObject *keeps_plain; /* a fn that returns a value without '@' nor ASCII digit unchanged, or NULL */
    int nested;
} Walk;

typedef struct {
    char *buf;
    Py_ssize_t len;
    Py_ssize_t cap;
} Out;

static int
out_add(Out *out, const char *bytes, Py_ssize_t n)
{
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

static int
plain_text(const char *s, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '@' || (c >= '0' && c <= '9'))
            return 0;
    }
    return 1;
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
    PyObject *key = Py_None;
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
                Py_DECREF(key);
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
            PyObject *value = PyBytes_FromStringAndSize(d + start, end - start);
            if (value == NULL)
                FAIL();
            if (want_key) {
                Py_DECREF(key);
                key = value;
                pos = end + 2;
                want_key = 0;
                continue;
            }
            PyObject *new = NULL;
            if (w->nested && looks_serialized(d + start, end - start)) {
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
                new = call_rewrite(w, key, value);
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
                char head[32];
                int head_size = snprintf(head, sizeof head, "s:%zd:\"", new_size);
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
    Walk w = {args[1], NULL, NULL, nested};
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
    Walk w = {args[2], args[1], args[3] == Py_None ? NULL : args[3], nested};
    return walk(&w, args[0], 0);
}

static PyMethodDef methods[] = {
    {"rewrite_strings", (PyCFunction)(void (*)(void))rewrite_strings, METH_FASTCALL,
     "rewrite_strings(data, rewrite, nested) -> bytes | None\n\n"
     "phpserialize.rewrite_strings's walk: every string value passed through rewrite(key, value);\n"
     "data itself when nothing changed; None when the Python walks must decide."},
    {"rewrite_strings_by_key", (PyCFunction)(void (*)(void))rewrite_strings_by_key, METH_FASTCALL,
     "rewrite_strings_by_key(data, fns, fn_for, keeps_plain, nested) -> bytes | None\n\n"
     "The same with the rewrite chosen per key: fns.get(key) or fn_for(key), called with the value;\n"
     "keeps_plain (or None) is not called for a value without '@' nor ASCII digit."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "clonekit.sanitize._speedups",
    "Compiled fast paths of clonekit.sanitize (optional; the pure-Python code does the same).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module_def);
}
