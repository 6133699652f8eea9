/*
 * switchboard.ami._speedups: the hot loop of the AMI parser in C.
 *
 * frame_headers(frame: str) splits the text of one complete AMI frame (no
 * trailing blank line) into its lines and each line into "Name: value";
 * parse_run(run: str) does the same for every frame of a run of complete
 * frames (one pass finds the frame ends and counts the lines);
 * parse_bytes(data: bytes, end: int) is parse_run(data[:end].decode("utf-8",
 * "replace")) done on the UTF-8 bytes: frames and lines are found with memchr
 * on the bytes and each string is decoded on its own (ASCII ones by a memcpy);
 * an accepted frame holding non-ASCII text stays bytes (protocol.py decodes it
 * only if Event.raw is read).
 * As CR, LF, ':' and ' ' are ASCII and never part of a UTF-8 multi-byte
 * sequence (nor of an invalid one the decoder replaces), the pieces decode to
 * exactly the slices of the decoded run. All three accept
 * only the plain case and return None (the frame itself) for
 * everything else, so that switchboard/ami/protocol.py's general path stays
 * the one definition of what a frame means:
 *
 *   - lines are separated by CR LF; an empty line anywhere -> None;
 *   - every line must hold a ':' with a non-empty name before it that has no
 *     space, followed by a ' ' -> otherwise None (a command body line, a
 *     "Name:value" line, stray CR LF around the frame);
 *   - the value is everything after ": " (it may itself hold ": ");
 *   - a name repeated after the first line (ChanVariable) -> None.
 *
 * When it returns (name, value, headers), the first line is "name: value"
 * and headers is a new dict of the other lines, exactly what the general
 * path (_parse_lines) gives for them. Strings are created with the kind of
 * the frame (ASCII frames take a memcpy fast path).
 *
 * Built by setup.py. SWITCHBOARD_NO_EXTENSIONS=1 makes protocol.py use the
 * pure-Python path instead; the unit tests run both and compare them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* A name cache: AMI sends the same few hundred header names over and over.
 * Reusing one str object per name saves an allocation and a hash per header
 * (a str caches its hash). Direct-mapped; a miss (or a collision) just
 * creates a new str. ASCII names only. */
#define NAME_CACHE_SIZE 1024
#define NAME_MAX_LEN 48
static PyObject *name_cache[NAME_CACHE_SIZE];

static PyObject *
ascii_str(const unsigned char *s, Py_ssize_t n)
{
    PyObject *u = PyUnicode_New(n, 127);
    if (u == NULL)
        return NULL;
    memcpy(PyUnicode_1BYTE_DATA(u), s, (size_t)n);
    return u;
}

static PyObject *
ascii_name(const unsigned char *s, Py_ssize_t n)
{
    if (n > NAME_MAX_LEN)
        return ascii_str(s, n);
    /* slot from the length and three bytes: cheap, and distinct enough for AMI's names */
    uint32_t key = (uint32_t)s[0] | (uint32_t)s[n - 1] << 8 | (uint32_t)s[n >> 1] << 16 | (uint32_t)n << 24;
    size_t slot = (size_t)((key * 2654435761u) >> 22) & (NAME_CACHE_SIZE - 1);
    PyObject *cached = name_cache[slot];
    if (cached != NULL && PyUnicode_GET_LENGTH(cached) == n
            && memcmp(PyUnicode_1BYTE_DATA(cached), s, (size_t)n) == 0) {
        Py_INCREF(cached);
        return cached;
    }
    PyObject *u = ascii_str(s, n);
    if (u == NULL)
        return NULL;
    Py_XSETREF(name_cache[slot], Py_NewRef(u));
    return u;
}

/* Add name -> value to dict; 1 added, 0 the name was there already, -1 error. */
static inline int
add_header(PyObject *dict, PyObject *name, PyObject *value)
{
    /* one lookup: insert unless present; a dict that did not grow means a repeat
     * (comparing the returned object would miss '' and the cached 1-char strings) */
    Py_ssize_t before = PyDict_GET_SIZE(dict);
    PyObject *got = PyDict_SetDefault(dict, name, value);
    Py_DECREF(name);
    Py_DECREF(value);
    if (got == NULL)
        return -1;
    return PyDict_GET_SIZE(dict) != before;
}

static int
all_ascii(const unsigned char *s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull)
            return 0;
    }
    for (; i < n; i++)
        if (s[i] & 0x80)
            return 0;
    return 1;
}

/* A str from bytes that are ASCII (utf8 == 0) or UTF-8, invalid sequences replaced. */
static inline PyObject *
text_str(const unsigned char *s, Py_ssize_t n, int utf8)
{
    if (utf8 && !all_ascii(s, n))
        return PyUnicode_DecodeUTF8((const char *)s, n, "replace");
    return ascii_str(s, n);
}

/* The frame's bytes (ASCII, or UTF-8 when utf8 is set) split by the rules above.
 * Result: 1 parsed, 0 not the plain case (caller returns None), -1 error. */
static int
parse_plain(const unsigned char *s, Py_ssize_t len, int utf8,
            PyObject **kind, PyObject **first, PyObject *dict)
{
    const unsigned char *p = s, *end = s + len;
    int line_no = 0;
    for (;;) {
        /* the name: up to the first ':', not empty, no space, no CR LF */
        const unsigned char *name = p;
        const unsigned char *colon = memchr(p, ':', (size_t)(end - p));
        if (colon == NULL || colon == p || memchr(p, ' ', (size_t)(colon - p)) != NULL)
            return 0;
        for (const unsigned char *r = p; (r = memchr(r, '\r', (size_t)(colon - r))) != NULL; r++)
            if (r + 1 < colon && r[1] == '\n')
                return 0;   /* a line without ':' before this one */
        p = colon;
        Py_ssize_t name_len = p - name;
        /* ": " must follow */
        if (name_len == 0 || end - p < 2 || p[1] != ' ')
            return 0;
        const unsigned char *value = p + 2;
        /* the value: up to CR LF or the end of the frame */
        const unsigned char *eol = end, *q = value;
        const unsigned char *cr;
        while ((cr = memchr(q, '\r', (size_t)(end - q))) != NULL) {
            if (cr + 1 < end && cr[1] == '\n') {
                eol = cr;
                break;
            }
            q = cr + 1;
        }
        PyObject *n = utf8 && !all_ascii(name, name_len) ? text_str(name, name_len, 1)
                                                         : ascii_name(name, name_len);
        if (n == NULL)
            return -1;
        PyObject *v = text_str(value, eol - value, utf8);
        if (v == NULL) {
            Py_DECREF(n);
            return -1;
        }
        if (line_no++ == 0) {
            *kind = n;
            *first = v;
        } else {
            int added = add_header(dict, n, v);
            if (added <= 0)
                return added;
        }
        if (eol == end)
            return 1;
        p = eol + 2;
        if (p == end)   /* the frame ends with CR LF: an empty last line */
            return 0;
    }
}

/* The same rules for frames holding non-ASCII text, for one string kind k (a constant at
 * each call site below, so PyUnicode_READ compiles to a plain typed read). */
static inline __attribute__((always_inline)) int
parse_kind(PyObject *frame, int k, PyObject **kind, PyObject **first, PyObject *dict)
{
    Py_ssize_t len = PyUnicode_GET_LENGTH(frame);
    const void *data = PyUnicode_DATA(frame);
    Py_ssize_t pos = 0;
    int line_no = 0;
    unsigned char narrow[NAME_MAX_LEN];
    while (1) {
        Py_ssize_t eol = len;
        Py_ssize_t colon = -1;
        int space_in_name = 0, ascii_name_ok = 1;
        for (Py_ssize_t i = pos; i < len; i++) {
            Py_UCS4 c = PyUnicode_READ(k, data, i);
            if (c == '\r' && i + 1 < len && PyUnicode_READ(k, data, i + 1) == '\n') {
                eol = i;
                break;
            }
            if (colon < 0) {
                if (c == ':')
                    colon = i;
                else if (c == ' ')
                    space_in_name = 1;
                else if (c >= 128)
                    ascii_name_ok = 0;
            }
        }
        if (eol == pos || colon <= pos || space_in_name)
            return 0;
        if (colon + 1 >= eol || PyUnicode_READ(k, data, colon + 1) != ' ')
            return 0;
        PyObject *name;
        Py_ssize_t name_len = colon - pos;
        if (ascii_name_ok && name_len <= NAME_MAX_LEN) {   /* names are ASCII: share the cached ones */
            for (Py_ssize_t i = 0; i < name_len; i++)
                narrow[i] = (unsigned char)PyUnicode_READ(k, data, pos + i);
            name = ascii_name(narrow, name_len);
        } else {
            name = PyUnicode_Substring(frame, pos, colon);
        }
        if (name == NULL)
            return -1;
        PyObject *value = PyUnicode_Substring(frame, colon + 2, eol);
        if (value == NULL) {
            Py_DECREF(name);
            return -1;
        }
        if (line_no == 0) {
            *kind = name;
            *first = value;
        } else {
            int added = add_header(dict, name, value);
            if (added <= 0)
                return added;
        }
        line_no++;
        if (eol >= len)
            return 1;
        pos = eol + 2;
        if (pos >= len)
            return 0;
    }
}

static int
parse_generic(PyObject *frame, PyObject **kind, PyObject **first, PyObject *dict)
{
    switch (PyUnicode_KIND(frame)) {
    case PyUnicode_1BYTE_KIND:
        return parse_kind(frame, PyUnicode_1BYTE_KIND, kind, first, dict);
    case PyUnicode_2BYTE_KIND:
        return parse_kind(frame, PyUnicode_2BYTE_KIND, kind, first, dict);
    default:
        return parse_kind(frame, PyUnicode_4BYTE_KIND, kind, first, dict);
    }
}

/* The end of a split: when it failed or declined (r <= 0), release what it made. Returns r. */
static int
split_done(int r, PyObject **kind, PyObject **first, PyObject **dict)
{
    if (r <= 0) {
        Py_CLEAR(*kind);
        Py_CLEAR(*first);
        Py_CLEAR(*dict);
    }
    return r;
}

/* Split the bytes f[0:n] of one frame, ASCII (utf8 == 0) or UTF-8. lines: its number of CR LF.
 * 1: *kind, *first, *dict are new references; 0: not the plain case; -1: error. */
static int
split_bytes(const unsigned char *f, Py_ssize_t n, int utf8, Py_ssize_t lines,
            PyObject **kind, PyObject **first, PyObject **dict)
{
    *kind = *first = *dict = NULL;
    if (n == 0)
        return 0;
    *dict = lines > 5 ? _PyDict_NewPresized(lines) : PyDict_New();
    return *dict == NULL ? -1 : split_done(parse_plain(f, n, utf8, kind, first, *dict), kind, first, dict);
}

/* Split one frame str. lines: its number of CR LF when the caller counted them, else -1.
 * 1: *kind, *first, *dict are new references; 0: not the plain case; -1: error. */
static int
split_frame(PyObject *frame, Py_ssize_t lines, PyObject **kind, PyObject **first, PyObject **dict)
{
    Py_ssize_t len = PyUnicode_GET_LENGTH(frame);
    if (PyUnicode_IS_ASCII(frame)) {
        const unsigned char *d = PyUnicode_1BYTE_DATA(frame);
        if (lines < 0) {
            /* presize for the header lines (one memchr pass) so the dict never grows */
            const unsigned char *p = d, *e = d + len;
            lines = 0;
            while ((p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
                lines++;
                p++;
            }
        }
        return split_bytes(d, len, 0, lines, kind, first, dict);
    }
    *kind = *first = NULL;
    *dict = PyDict_New();
    return *dict == NULL ? -1 : split_done(parse_generic(frame, kind, first, *dict), kind, first, dict);
}

static int
want_str(PyObject *obj, const char *fn)
{
    if (PyUnicode_Check(obj))
        return 1;
    PyErr_Format(PyExc_TypeError, "%s() wants str, not %.100s", fn, Py_TYPE(obj)->tp_name);
    return 0;
}

/* A tuple of the items given (references stolen: released even on failure). */
static PyObject *
steal_tuple(Py_ssize_t n, PyObject **items)
{
    PyObject *t = PyTuple_New(n);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (t == NULL)
            Py_DECREF(items[i]);
        else
            PyTuple_SET_ITEM(t, i, items[i]);
    }
    return t;
}

static PyObject *
frame_headers(PyObject *module, PyObject *frame)
{
    (void)module;
    if (!want_str(frame, "frame_headers"))
        return NULL;
    PyObject *parts[3];
    int r = split_frame(frame, -1, &parts[0], &parts[1], &parts[2]);
    if (r < 0)
        return NULL;
    if (r == 0)
        Py_RETURN_NONE;
    return steal_tuple(3, parts);
}

/* The index of the next CR LF CR LF from pos in a run of kind k (a constant), or len. */
static inline __attribute__((always_inline)) Py_ssize_t
sep_kind(PyObject *run, int k, Py_ssize_t pos, Py_ssize_t len)
{
    const void *data = PyUnicode_DATA(run);
    for (Py_ssize_t i = pos; i + 3 < len; i++)
        if (PyUnicode_READ(k, data, i) == '\r' && PyUnicode_READ(k, data, i + 1) == '\n'
                && PyUnicode_READ(k, data, i + 2) == '\r' && PyUnicode_READ(k, data, i + 3) == '\n')
            return i;
    return len;
}

/* In bytes s[0:len]: the index of the next CR LF CR LF from pos, or len;
 * *lines gets the number of CR LF before it. */
static Py_ssize_t
bytes_frame_end(const unsigned char *s, Py_ssize_t pos, Py_ssize_t len, Py_ssize_t *lines)
{
    const unsigned char *p = s + pos, *end = s + len, *cr;
    Py_ssize_t n = 0;
    while ((cr = memchr(p, '\r', (size_t)(end - p))) != NULL) {
        if (end - cr >= 2 && cr[1] == '\n') {
            if (end - cr >= 4 && cr[2] == '\r' && cr[3] == '\n') {
                *lines = n;
                return cr - s;
            }
            n++;
            p = cr + 2;
        } else {
            p = cr + 1;
        }
    }
    *lines = n;
    return len;
}

/* End of the frame starting at pos: the index of the next CR LF CR LF, or len.
 * *lines gets the number of CR LF inside the frame (1-byte kind only, else -1). */
static Py_ssize_t
frame_end(PyObject *run, Py_ssize_t pos, Py_ssize_t len, Py_ssize_t *lines)
{
    int k = PyUnicode_KIND(run);
    if (k == PyUnicode_1BYTE_KIND)
        return bytes_frame_end(PyUnicode_1BYTE_DATA(run), pos, len, lines);
    *lines = -1;
    return k == PyUnicode_2BYTE_KIND ? sep_kind(run, PyUnicode_2BYTE_KIND, pos, len)
                                     : sep_kind(run, PyUnicode_4BYTE_KIND, pos, len);
}

/* The frames of a run: of the str run when it is not NULL, else of the UTF-8 bytes s[0:len].
 * A list as parse_run() documents it, except that from bytes an accepted frame holding
 * non-ASCII text comes as its bytes (decoding it is left to whoever reads Event.raw). */
static PyObject *
split_run(PyObject *run, const unsigned char *s, Py_ssize_t len)
{
    Py_ssize_t pos = 0;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (;;) {
        Py_ssize_t lines, end;
        PyObject *parts[4] = {NULL, NULL, NULL, NULL}, *item;
        int r;
        if (run != NULL) {
            end = frame_end(run, pos, len, &lines);
            parts[0] = PyUnicode_Substring(run, pos, end);
            r = parts[0] == NULL ? -1 : split_frame(parts[0], lines, &parts[1], &parts[2], &parts[3]);
        } else {
            end = bytes_frame_end(s, pos, len, &lines);
            const unsigned char *f = s + pos;
            Py_ssize_t n = end - pos;
            int utf8 = !all_ascii(f, n);
            r = split_bytes(f, n, utf8, lines, &parts[1], &parts[2], &parts[3]);
            if (r >= 0) {
                parts[0] = !utf8 ? ascii_str(f, n)
                         : r == 1 ? PyBytes_FromStringAndSize((const char *)f, n)
                         : PyUnicode_DecodeUTF8((const char *)f, n, "replace");
                if (parts[0] == NULL)
                    r = -1;
            }
        }
        if (r < 0) {
            for (int i = 0; i < 4; i++)
                Py_XDECREF(parts[i]);
            goto error;
        }
        item = r == 0 ? parts[0] : steal_tuple(4, parts);
        if (item == NULL)
            goto error;
        int failed = PyList_Append(out, item);
        Py_DECREF(item);
        if (failed)
            goto error;
        if (end == len)
            return out;
        pos = end + 4;
    }
error:
    Py_DECREF(out);
    return NULL;
}

static PyObject *
parse_run(PyObject *module, PyObject *run)
{
    (void)module;
    if (!want_str(run, "parse_run"))
        return NULL;
    return split_run(run, NULL, PyUnicode_GET_LENGTH(run));
}

/* parse_bytes(data, end): parse_run of data[:end] decoded as UTF-8 (errors replaced). */
static PyObject *
parse_bytes(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyBytes_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "parse_bytes() wants (bytes, int)");
        return NULL;
    }
    Py_ssize_t len = PyLong_AsSsize_t(args[1]);
    if (len == -1 && PyErr_Occurred())
        return NULL;
    if (len < 0 || len > PyBytes_GET_SIZE(args[0])) {
        PyErr_SetString(PyExc_ValueError, "parse_bytes(): end out of range");
        return NULL;
    }
    return split_run(NULL, (const unsigned char *)PyBytes_AS_STRING(args[0]), len);
}

static PyMethodDef speedups_methods[] = {
    {"frame_headers", frame_headers, METH_O,
     "frame_headers(frame: str) -> (name, value, headers) | None\n\n"
     "Split one AMI frame into its first line's name and value and a dict of\n"
     "the other lines; None when the frame is not the plain case (see the\n"
     "module source)."},
    {"parse_run", parse_run, METH_O,
     "parse_run(run: str) -> list[tuple[str, str, str, dict[str, str]] | str]\n\n"
     "Split a run of complete frames as run.split('\\r\\n\\r\\n') does; each frame\n"
     "becomes (frame, name, value, headers) as frame_headers() gives, or stays\n"
     "the frame str itself where frame_headers() would say None."},
    {"parse_bytes", (PyCFunction)(void (*)(void))parse_bytes, METH_FASTCALL,
     "parse_bytes(data: bytes, end: int) -> list[tuple[str, str, str, dict[str, str]] | str]\n\n"
     "parse_run(data[:end].decode('utf-8', 'replace')), computed on the bytes, except that\n"
     "an accepted frame holding non-ASCII text comes as its bytes, not decoded."},
    {NULL, NULL, 0, NULL},
};

static int
speedups_clear(PyObject *module)
{
    (void)module;
    for (size_t i = 0; i < NAME_CACHE_SIZE; i++)
        Py_CLEAR(name_cache[i]);
    return 0;
}

static void
speedups_free(void *module)
{
    speedups_clear((PyObject *)module);
}

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "switchboard.ami._speedups",
    .m_doc = "C fast path of the AMI frame parser (see switchboard/ami/protocol.py).",
    .m_size = -1,
    .m_methods = speedups_methods,
    .m_free = speedups_free,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&speedups_module);
}
