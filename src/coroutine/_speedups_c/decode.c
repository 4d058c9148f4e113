/* The durable value decoder's loop, compiled: `_decode._Decoder.dec`, statement for statement.
 *
 * The Python method is the reference; this is a translation of it that reads and writes the
 * same `__slots__` of the same `_Decoder` and `Budget` objects, charges the budget the same
 * amounts at the same points (before each object is made), refuses the same inputs with the
 * same `DecodeError` messages, and calls back into the Python functions for everything rare:
 * a count that is not a short well-formed varint (`_count`, which raises the exact error),
 * an exhausted budget (`Budget.charge`, which raises it), and registered and pickled types
 * (`_registered_frame`, `_registered`: they run the program's own code). The budget's `left`
 * is kept in a C integer while the loop runs, and written back before every call into Python
 * and on every way out, so a callback sees and charges the same budget the Python loop would.
 *
 * What differs is only how objects are built, never what: a list is allocated at its count
 * (which the budget was charged for) and filled in place, its length growing with each item,
 * so it is a valid list at every moment Python code could see it (a callback, a collection).
 * Dict and set keys are checked as `_check_keys` does, with the hashes counted by sorting
 * (no table an attacker could flood) and the same error for the same first offending key.
 *
 * Two things the Python loop does not do, neither visible in what it returns: the garbage
 * collector is paused while the loop runs (it makes only acyclic containers; collections
 * triggered by their number cost more than the decoding), and a value that could overdraw
 * the budget is first walked without building anything (`overdraws`), so that a
 * decompression bomb is refused at the speed of reading it.
 *
 * decode_setup(namespace) binds to `_decode`'s objects and returns the method descriptor that
 * `_decode` installs as `_Decoder.dec` (module.c lists it). Nothing here touches greenlets. */

#include "speedups.h"

#include <stdint.h>
#include <stdlib.h>

/* What decode_setup binds (owned references, never released: the module lives on). */
static PyTypeObject *DecoderType, *BudgetType;
static PyObject *DecodeError, *py_count, *py_registered_frame, *py_registered, *py_dec;
static PyObject *s_charge;
static Py_ssize_t d_buf, d_pos, d_end, d_registry, d_budget, b_left; /* slot offsets */
static int max_depth, max_same_hash;
/* The costs of `_decode` (its _COST_* constants): scalars, then (empty, fixed, per item) of
 * the containers, indexed by C_LIST... below. */
static long long cost_int, cost_float, cost_str, cost_bytes;
static long long cost_box[5][3];
/* More than any byte is charged: the largest cost of an object, plus the largest per item
 * (its place in its container), plus 2 (a string's). */
static long long most_a_byte;

#define STACK_MAX 128 /* frames; decode_setup refuses a MAX_DEPTH above it */
#define SAFE_INT ((1LL << 61) - 1)

enum { C_LIST, C_TUPLE, C_DICT, C_SET, C_FROZENSET };

typedef struct {
    int tag;            /* the tag byte: l t d S Z R */
    Py_ssize_t todo;    /* items still to read */
    PyObject *items;    /* the list being filled; for R, the Python frame [tag, n, items, name] */
} Frame;

/* One decoding's state; `left` is the budget's, authoritative unless `synced`. */
typedef struct {
    PyObject *self, *buf, *budget;
    const unsigned char *p;
    Py_ssize_t end;
    long long left;
    int synced; /* budget.left holds the truth (set around calls into Python) */
    int gc;     /* the collector was enabled, and is paused while the loop runs */
} State;

static int
container_index(int tag)
{
    switch (tag) {
    case 0x6C: return C_LIST;
    case 0x74: return C_TUPLE;
    case 0x64: return C_DICT;
    case 0x53: return C_SET;
    case 0x5A: return C_FROZENSET;
    default: return -1;
    }
}

static int
raise_decode(const char *fmt, ...)
{
    char msg[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    PyErr_SetString(DecodeError, msg);
    return -1;
}

/* -- the budget --------------------------------------------------------------------------- */

static int
sync_out(State *st) /* budget.left = left; then budget.left is the truth */
{
    if (st->synced)
        return 0;
    PyObject *v = PyLong_FromLongLong(st->left);
    if (v == NULL)
        return -1;
    PyObject *old = SLOT(st->budget, b_left);
    SLOT(st->budget, b_left) = v;
    Py_XDECREF(old);
    st->synced = 1;
    return 0;
}

/* left = budget.left, at the start and after a call into Python that may have charged it.
 * 0, or 1 if it is not an int within +-2**62 (never from `Budget`; at the start the Python
 * method then decodes, after a call the loop refuses). */
static int
sync_in(State *st)
{
    PyObject *v = SLOT(st->budget, b_left);
    int overflow = 0;
    if (v == NULL || !PyLong_CheckExact(v))
        return 1;
    long long left = PyLong_AsLongLongAndOverflow(v, &overflow);
    if (overflow || left > (1LL << 62) || left < -(1LL << 62))
        return 1;
    st->left = left;
    st->synced = 0;
    return 0;
}

/* Budget.charge(cost): refused by the Python method itself, with its message. */
static int
charge(State *st, long long cost)
{
    if (st->left - cost >= 0) {
        st->left -= cost;
        return 0;
    }
    if (sync_out(st) < 0)
        return -1;
    PyObject *arg = PyLong_FromLongLong(cost);
    if (arg == NULL)
        return -1;
    PyObject *r = PyObject_CallMethodOneArg(st->budget, s_charge, arg);
    Py_DECREF(arg);
    if (r != NULL) { /* (cannot happen: left - cost < 0) */
        Py_DECREF(r);
        return raise_decode("the budget refused nothing it should have");
    }
    return -1;
}

/* fn(*args) from the loop: the budget written back first, and the collector running as the
 * program left it, for the code of a registered type (re-read after: the code may change it).
 * The caller reads the budget back (sync_in) if it goes on. */
static PyObject *
call_python(State *st, PyObject *fn, PyObject *const *args, size_t nargs)
{
    if (sync_out(st) < 0)
        return NULL;
    if (st->gc)
        PyGC_Enable();
    PyObject *r = PyObject_Vectorcall(fn, args, nargs, NULL);
    st->gc = PyGC_Disable();
    return r;
}

/* -- counts ------------------------------------------------------------------------------- */

/* The count at p[*pos] (`_count`): the common varint of at most 9 bytes, within the bytes
 * left, read here; anything else (cut, too long, too large) by the Python `_count`. */
static int
read_count(State *st, Py_ssize_t *pos, Py_ssize_t *n)
{
    const unsigned char *p = st->p;
    Py_ssize_t i = *pos, end = st->end;
    uint64_t v = 0;
    for (int shift = 0; shift < 63 && i < end; shift += 7) {
        unsigned char b = p[i++];
        v |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80) {
            if (v > (uint64_t)(end - i))
                break;
            *n = (Py_ssize_t)v;
            *pos = i;
            return 0;
        }
    }
    PyObject *args[3] = {st->buf, NULL, NULL};
    if ((args[1] = PyLong_FromSsize_t(*pos)) == NULL)
        return -1;
    if ((args[2] = PyLong_FromSsize_t(end)) == NULL) {
        Py_DECREF(args[1]);
        return -1;
    }
    PyObject *r = PyObject_Vectorcall(py_count, args, 3, NULL);
    Py_DECREF(args[1]);
    Py_DECREF(args[2]);
    if (r == NULL)
        return -1;
    int ok = PyTuple_CheckExact(r) && PyTuple_GET_SIZE(r) == 2;
    if (ok) {
        *n = PyLong_AsSsize_t(PyTuple_GET_ITEM(r, 0));
        *pos = PyLong_AsSsize_t(PyTuple_GET_ITEM(r, 1));
        ok = !PyErr_Occurred();
    }
    Py_DECREF(r);
    if (!ok && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "_decode._count returned no (n, pos)");
    return ok ? 0 : -1;
}

/* -- dict keys and set items (`_check_keys`) ---------------------------------------------- */

typedef struct {
    Py_hash_t h;
    Py_ssize_t i;
} Hashed;

static int
by_hash(const void *a, const void *b)
{
    const Hashed *x = a, *y = b;
    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Refuse unhashable keys, and more than max_same_hash keys of one hash, as `_check_keys`:
 * of the keys items[0], items[stride], ..., the first offending one decides the error.
 * (Items are read afresh after each hash, which may run a registered type's code.) */
static int
check_keys(PyObject *items, Py_ssize_t stride)
{
    Py_ssize_t count = (PyList_GET_SIZE(items) + stride - 1) / stride;
    Hashed *seen = NULL;
    Py_ssize_t m = 0;
    PyObject *failed = NULL; /* the exception hash() raised, at the key stopped at */
    PyTypeObject *failed_type = NULL;
    for (Py_ssize_t i = 0; i < count && i * stride < PyList_GET_SIZE(items); i++) {
        PyObject *k = PyList_GET_ITEM(items, i * stride);
        PyTypeObject *t = Py_TYPE(k);
        if (t == &PyUnicode_Type || t == &PyBytes_Type || t == &PyBool_Type || k == Py_None)
            continue;
        if (t == &PyLong_Type) {
            int overflow;
            long long v = PyLong_AsLongLongAndOverflow(k, &overflow);
            if (!overflow && -SAFE_INT < v && v < SAFE_INT)
                continue;
        }
        if (seen == NULL && (seen = PyMem_Malloc(sizeof(Hashed) * (size_t)(count - i))) == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        Py_INCREF(k);
        Py_hash_t h = PyObject_Hash(k);
        Py_DECREF(k);
        if (h == -1) {
            failed = fetch_exc();
            failed_type = (PyTypeObject *)Py_NewRef(t);
            break;
        }
        seen[m].h = h;
        seen[m].i = i;
        m++;
    }
    /* The first key to make its hash's count pass max_same_hash, among those hashed. */
    Py_ssize_t flood_at = -1;
    Py_hash_t flood_h = 0;
    if (m > max_same_hash) {
        qsort(seen, (size_t)m, sizeof(Hashed), by_hash);
        for (Py_ssize_t a = 0, b; a < m; a = b) {
            for (b = a + 1; b < m && seen[b].h == seen[a].h; b++)
                ;
            if (b - a > max_same_hash && (flood_at < 0 || seen[a + max_same_hash].i < flood_at)) {
                flood_at = seen[a + max_same_hash].i;
                flood_h = seen[a].h;
            }
        }
    }
    PyMem_Free(seen);
    if (flood_at >= 0) {
        Py_XDECREF(failed);
        Py_XDECREF(failed_type);
        return raise_decode("more than %d keys of one container share the hash %lld "
                            "(a hash-flooding attack?)", max_same_hash, (long long)flood_h);
    }
    if (failed == NULL)
        return 0;
    if (!PyErr_GivenExceptionMatches(failed, PyExc_TypeError)) {
        Py_DECREF(failed_type);
        restore_exc(failed);
        return -1;
    }
    Py_DECREF(failed);
    PyObject *name = PyObject_GetAttrString((PyObject *)failed_type, "__name__");
    Py_DECREF(failed_type);
    if (name == NULL)
        return -1;
    PyErr_Format(DecodeError, "unhashable %S as a dict key or set item", name);
    Py_DECREF(name);
    return -1;
}

/* -- closing a container ------------------------------------------------------------------ */

/* The value of a full frame (its items consumed). New reference, or NULL. */
static PyObject *
close_frame(State *st, Frame *f)
{
    PyObject *items = f->items, *value = NULL;
    f->items = NULL;
    switch (f->tag) {
    case 0x6C: /* l */
        return items;
    case 0x74: /* t */
        value = PyList_AsTuple(items);
        break;
    case 0x64: /* d */
        if (check_keys(items, 2) < 0)
            break;
        if ((value = PyDict_New()) == NULL)
            break;
        for (Py_ssize_t i = 0; i + 1 < PyList_GET_SIZE(items); i += 2) {
            if (PyDict_SetItem(value, PyList_GET_ITEM(items, i), PyList_GET_ITEM(items, i + 1))
                < 0) {
                Py_CLEAR(value);
                break;
            }
        }
        break;
    case 0x53: /* S */
    case 0x5A: /* Z */
        if (check_keys(items, 1) < 0)
            break;
        value = f->tag == 0x53 ? PySet_New(items) : PyFrozenSet_New(items);
        break;
    default: /* R: the Python frame, its one item appended */
        value = call_python(st, py_registered, &items, 1);
        if (value != NULL && sync_in(st) != 0) { /* (a decode function ran wild) */
            Py_CLEAR(value);
            raise_decode("the budget was replaced during decoding");
        }
        break;
    }
    Py_DECREF(items);
    return value;
}

/* -- scalars ------------------------------------------------------------------------------ */

static PyObject *
make_int(const unsigned char *p, Py_ssize_t n)
{
    if (n > 8)
        return _PyLong_FromByteArray(p, (size_t)n, 0, 1);
    uint64_t u = p[0] & 0x80 ? ~(uint64_t)0 : 0; /* sign-extended, big-endian */
    for (Py_ssize_t i = 0; i < n; i++)
        u = (u << 8) | p[i];
    return PyLong_FromLongLong((long long)u);
}

static PyObject *
make_str(const unsigned char *p, Py_ssize_t n)
{
    PyObject *s = PyUnicode_DecodeUTF8((const char *)p, n, "surrogatepass");
    if (s != NULL || !PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
        return s;
    PyObject *exc = fetch_exc();
    PyErr_Format(DecodeError, "invalid UTF-8 in a string: %S", exc);
    Py_DECREF(exc);
    return NULL;
}

/* -- the budget's look-ahead ---------------------------------------------------------- */

/* Whether the bytes from `pos` run the budget out before anything else could go wrong: the
 * loop's walk, without making anything. A value of many small objects over the budget (a
 * decompression bomb: lists of empty sets) is then refused at the speed of reading it,
 * instead of building and freeing its objects first (the memory the budget allows, 64
 * bytes a byte, costs more to fault in and free than the decoding does).
 *
 * The walk charges what the loop charges in the same order, and stops (0: decode it) at
 * anything whose outcome depends on what the loop would make: a count that is not a short
 * varint, a string not all ASCII (the UTF-8 decoder judges it), a registered or pickled
 * type, an int of zero bytes, a bad tag, nesting past the limit, a truncation, and a dict or
 * set closed with a key other than str, bytes, bool, None or a small int (`_check_keys`
 * judges it). So when a charge would overdraw the budget before any of these, the loop would
 * refuse there, with this charge: the budget is left as the loop leaves it and the same
 * `Budget.charge` raises (-1). Returns 0 too if the whole value fits the budget. */
enum { K_NONE, K_DICT, K_SET, K_UNSAFE }; /* no keys; safe keys so far; one is not */

static int
overdraws(State *st, Py_ssize_t pos)
{
    const unsigned char *p = st->p;
    Py_ssize_t end = st->end;
    long long left = st->left;
    Py_ssize_t todo[STACK_MAX];
    unsigned char keyed[STACK_MAX]; /* K_*: what a frame's keys are */
    int sp = 0;
    for (;;) {
        if (pos >= end)
            return 0;
        int tag = p[pos++], safe = 1; /* safe: the item is a key _check_keys lets pass */
        long long cost = 0;
        switch (tag) {
        case 0x73: case 0x69: case 0x62: /* s i b */
        case 0x6C: case 0x74: case 0x64: case 0x53: case 0x5A: { /* l t d S Z */
            uint64_t n = 0;
            int shift = 0;
            for (;; shift += 7) {
                if (shift >= 63 || pos >= end)
                    return 0;
                unsigned char b = p[pos++];
                n |= (uint64_t)(b & 0x7F) << shift;
                if (b < 0x80)
                    break;
            }
            if (n > (uint64_t)(end - pos))
                return 0;
            if (tag == 0x73) {
                cost = cost_str + 2 * (long long)n;
                if (left - cost >= 0)
                    for (Py_ssize_t i = 0; i < (Py_ssize_t)n; i++)
                        if (p[pos + i] >= 0x80)
                            return 0;
                pos += n;
            }
            else if (tag == 0x69) {
                if (n == 0)
                    return 0;
                cost = cost_int + 2 * (long long)n;
                safe = n <= 7; /* (|value| < 2**55: well within the safe ints) */
                pos += n;
            }
            else if (tag == 0x62) {
                cost = cost_bytes + (long long)n;
                pos += n;
            }
            else {
                if (sp >= max_depth)
                    return 0;
                int box = container_index(tag);
                if (n == 0) {
                    cost = cost_box[box][0];
                    safe = 0;
                    break;
                }
                cost = cost_box[box][1] + cost_box[box][2] * (long long)n;
                if (left - cost < 0)
                    break;
                left -= cost;
                todo[sp] = tag == 0x64 ? 2 * (Py_ssize_t)n : (Py_ssize_t)n;
                keyed[sp] = tag == 0x64 ? K_DICT : tag == 0x6C || tag == 0x74 ? K_NONE : K_SET;
                sp++;
                continue;
            }
            break;
        }
        case 0x4E: case 0x54: case 0x46: /* N T F */
            break;
        case 0x66: /* f */
            if (pos + 8 > end)
                return 0;
            cost = cost_float;
            safe = 0;
            pos += 8;
            break;
        default: /* R P, a bad tag */
            return 0;
        }
        if (left - cost < 0) { /* the loop's refusal, at this charge */
            st->left = left;
            return charge(st, cost);
        }
        left -= cost;
        while (sp) { /* the item into its container, closing the full ones */
            int k = keyed[sp - 1];
            if (!safe && (k == K_SET || (k == K_DICT && todo[sp - 1] % 2 == 0)))
                keyed[sp - 1] = K_UNSAFE; /* (a dict's items: key, value, key, ...) */
            if (--todo[sp - 1])
                break;
            if (keyed[--sp] == K_UNSAFE)
                return 0;
            safe = 0; /* a container is not a key _check_keys lets pass */
        }
        if (sp == 0)
            return 0;
    }
}

/* -- the loop ----------------------------------------------------------------------------- */

/* `_Decoder.dec` for the state st, from `pos`: the value (the decoder's pos then after it),
 * or NULL with the exception raised. */
static PyObject *
run(State *st, Py_ssize_t pos, int registry)
{
    const unsigned char *p = st->p;
    Py_ssize_t end = st->end;
    Frame stack[STACK_MAX];
    int sp = 0;
    PyObject *value;
    for (;;) {
        if (pos >= end) {
            raise_decode("truncated: a value is missing at offset %zd", pos);
            goto fail;
        }
        int tag = p[pos++];
        int box;
        switch (tag) {
        case 0x73: case 0x69: case 0x62: /* s i b */
        case 0x6C: case 0x74: case 0x64: case 0x53: case 0x5A: { /* l t d S Z */
            Py_ssize_t n;
            if (pos < end && p[pos] < 0x80 && p[pos] <= end - pos - 1)
                n = p[pos++]; /* the common one-byte count, read here */
            else if (read_count(st, &pos, &n) < 0)
                goto fail;
            if (tag == 0x73) { /* s */
                if (charge(st, cost_str + 2 * (long long)n) < 0
                    || (value = make_str(p + pos, n)) == NULL)
                    goto fail;
                pos += n;
            }
            else if (tag == 0x69) { /* i */
                if (n == 0) {
                    raise_decode("an int of zero bytes");
                    goto fail;
                }
                if (charge(st, cost_int + 2 * (long long)n) < 0
                    || (value = make_int(p + pos, n)) == NULL)
                    goto fail;
                pos += n;
            }
            else if (tag == 0x62) { /* b */
                if (charge(st, cost_bytes + (long long)n) < 0
                    || (value = PyBytes_FromStringAndSize((const char *)p + pos, n)) == NULL)
                    goto fail;
                pos += n;
            }
            else {
                if (sp >= max_depth) {
                    raise_decode("containers nest more than %d deep", max_depth);
                    goto fail;
                }
                box = container_index(tag);
                long long cost = n ? cost_box[box][1] + cost_box[box][2] * (long long)n
                                   : cost_box[box][0];
                if (charge(st, cost) < 0)
                    goto fail;
                if (n) {
                    Py_ssize_t slots = tag == 0x64 ? 2 * n : n;
                    PyObject *items = PyList_New(slots);
                    if (items == NULL)
                        goto fail;
                    Py_SET_SIZE(items, 0); /* filled in place, a valid list at each step */
                    stack[sp].tag = tag;
                    stack[sp].todo = slots;
                    stack[sp].items = items;
                    sp++;
                    continue;
                }
                switch (box) {
                case C_LIST: value = PyList_New(0); break;
                case C_TUPLE: value = PyTuple_New(0); break;
                case C_DICT: value = PyDict_New(); break;
                case C_SET: value = PySet_New(NULL); break;
                default: value = PyFrozenSet_New(NULL); break;
                }
                if (value == NULL)
                    goto fail;
            }
            break;
        }
        case 0x4E: /* N */
            value = Py_NewRef(Py_None);
            break;
        case 0x54: /* T */
            value = Py_NewRef(Py_True);
            break;
        case 0x46: /* F */
            value = Py_NewRef(Py_False);
            break;
        case 0x66: { /* f */
            if (pos + 8 > end) {
                raise_decode("truncated: 8 bytes needed at offset %zd, %zd left", pos, end - pos);
                goto fail;
            }
            if (charge(st, cost_float) < 0)
                goto fail;
#if PY_VERSION_HEX >= 0x030B0000
            double d = PyFloat_Unpack8((const char *)p + pos, 0);
#else
            double d = _PyFloat_Unpack8(p + pos, 0);
#endif
            if ((d == -1.0 && PyErr_Occurred()) || (value = PyFloat_FromDouble(d)) == NULL)
                goto fail;
            pos += 8;
            break;
        }
        case 0x52: case 0x50: { /* R P: the Python functions read the head, and decode */
            if (sp >= max_depth) {
                raise_decode("containers nest more than %d deep", max_depth);
                goto fail;
            }
            PyObject *args[6] = {st->buf, PyLong_FromLong(tag), PyLong_FromSsize_t(pos),
                                 PyLong_FromSsize_t(end), registry ? Py_True : Py_False,
                                 st->budget};
            PyObject *r = NULL;
            if (args[1] != NULL && args[2] != NULL && args[3] != NULL)
                r = call_python(st, py_registered_frame, args, 6);
            Py_XDECREF(args[1]), Py_XDECREF(args[2]), Py_XDECREF(args[3]);
            if (r == NULL)
                goto fail;
            PyObject *frame = PyTuple_CheckExact(r) && PyTuple_GET_SIZE(r) == 2
                                  ? PyTuple_GET_ITEM(r, 0) : NULL;
            Py_ssize_t after = frame ? PyLong_AsSsize_t(PyTuple_GET_ITEM(r, 1)) : -1;
            if (frame == NULL || !PyList_CheckExact(frame) || PyList_GET_SIZE(frame) != 4
                || after < pos || after > end || sync_in(st) != 0) {
                Py_DECREF(r);
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_TypeError, "_decode._registered_frame: bad frame");
                goto fail;
            }
            pos = after;
            Py_INCREF(frame);
            Py_DECREF(r);
            int todo = PyObject_IsTrue(PyList_GET_ITEM(frame, 1));
            if (todo < 0) {
                Py_DECREF(frame);
                goto fail;
            }
            if (todo) {
                stack[sp].tag = 0x52;
                stack[sp].todo = 1;
                stack[sp].items = frame;
                sp++;
                continue;
            }
            value = call_python(st, py_registered, &frame, 1);
            Py_DECREF(frame);
            if (value == NULL)
                goto fail;
            if (sync_in(st) != 0) {
                Py_DECREF(value);
                raise_decode("the budget was replaced during decoding");
                goto fail;
            }
            break;
        }
        default:
            raise_decode("unknown tag byte 0x%02x at offset %zd", tag, pos - 1);
            goto fail;
        }
        /* hand the value to its container, closing the full ones */
        while (sp) {
            Frame *top = &stack[sp - 1];
            if (top->tag == 0x52) {
                PyObject *items = PyList_GET_ITEM(top->items, 2);
                int r = PyList_Check(items) ? PyList_Append(items, value) : -1;
                Py_DECREF(value);
                if (r < 0) {
                    if (!PyErr_Occurred())
                        PyErr_SetString(PyExc_TypeError, "_decode: a bad registered frame");
                    goto fail;
                }
            }
            else { /* in place: the list was allocated at its count */
                Py_ssize_t k = PyList_GET_SIZE(top->items);
                if (k < ((PyListObject *)top->items)->allocated) {
                    PyList_SET_ITEM(top->items, k, value);
                    Py_SET_SIZE(top->items, k + 1);
                }
                else { /* (code run by a registered type grew it: never in practice) */
                    int r = PyList_Append(top->items, value);
                    Py_DECREF(value);
                    if (r < 0)
                        goto fail;
                }
            }
            if (--top->todo)
                break;
            sp--;
            if ((value = close_frame(st, top)) == NULL)
                goto fail;
        }
        if (sp == 0) {
            PyObject *at = PyLong_FromSsize_t(pos);
            if (at == NULL) {
                Py_DECREF(value);
                goto fail;
            }
            Py_XSETREF(SLOT(st->self, d_pos), at);
            return value;
        }
    }
fail:
    while (sp)
        Py_XDECREF(stack[--sp].items);
    return NULL;
}

/* _Decoder.dec, compiled: the Python method's loop when the decoder holds what it expects
 * (bytes, ints in range, a Budget whose `left` fits a C integer), else the Python method. */
static PyObject *
Decoder_dec(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *buf = SLOT(self, d_buf), *pos_o = SLOT(self, d_pos), *end_o = SLOT(self, d_end);
    PyObject *budget = SLOT(self, d_budget), *registry = SLOT(self, d_registry);
    if (buf == NULL || !PyBytes_CheckExact(buf) || pos_o == NULL || !PyLong_CheckExact(pos_o)
        || end_o == NULL || !PyLong_CheckExact(end_o) || budget == NULL
        || Py_TYPE(budget) != BudgetType || registry == NULL)
        return PyObject_CallOneArg(py_dec, self);
    Py_ssize_t pos = PyLong_AsSsize_t(pos_o), end = PyLong_AsSsize_t(end_o);
    if (pos < 0 || end < pos || end > PyBytes_GET_SIZE(buf)) {
        PyErr_Clear();
        return PyObject_CallOneArg(py_dec, self);
    }
    State st = {self, buf, budget, (const unsigned char *)PyBytes_AS_STRING(buf), end, 0, 1};
    if (sync_in(&st) != 0)
        return PyObject_CallOneArg(py_dec, self);
    int reg = PyObject_IsTrue(registry);
    if (reg < 0)
        return NULL;
    /* Held for the call: a callback may rebind the decoder's slots. */
    Py_INCREF(buf), Py_INCREF(budget), Py_INCREF(self);
    /* The collector is paused: the loop makes only acyclic containers, each referenced from
     * its parent or the stack, so a collection would find nothing to free, and collections
     * triggered by the allocation count during a dense value cost more than the decoding
     * (a young collection every 700 containers, a full one each time the heap grows by a
     * quarter). The objects are traced as usual once it resumes. */
    st.gc = PyGC_Disable();
    PyObject *value = NULL;
    /* Look ahead only where the budget left could be overdrawn (no byte is charged more than
     * `most_a_byte`): a large value, or a budget nearly spent. */
    if (st.left >= most_a_byte * (long long)(end - pos) || overdraws(&st, pos) == 0)
        value = run(&st, pos, reg);
    if (st.gc)
        PyGC_Enable();
    if (!st.synced) {
        PyObject *exc = value == NULL ? fetch_exc() : NULL;
        if (sync_out(&st) < 0)
            Py_CLEAR(value);
        if (exc != NULL)
            restore_exc(exc);
    }
    Py_DECREF(buf), Py_DECREF(budget), Py_DECREF(self);
    return value;
}

static PyMethodDef dec_def = {
    "dec", Decoder_dec, METH_NOARGS,
    "dec($self, /)\n--\n\n"
    "The value at pos (pos is then after it): _Decoder.dec compiled (coroutine._speedups).",
};

/* -- setup -------------------------------------------------------------------------------- */

static int
offset_of(PyTypeObject *type, const char *name, Py_ssize_t *out)
{
    PyObject *descr = PyDict_GetItemString(type->tp_dict, name);
    if (!descr || !PyObject_TypeCheck(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "coroutine._speedups: %s.%s is not a slot",
                     type->tp_name, name);
        return -1;
    }
    *out = ((PyMemberDescrObject *)descr)->d_member->offset;
    return 0;
}

static PyObject *
item(PyObject *ns, const char *name)
{
    PyObject *v = PyDict_GetItemString(ns, name);
    if (v == NULL)
        PyErr_Format(PyExc_KeyError, "coroutine._speedups.decode_setup: %s missing", name);
    return v;
}

static int
costs(PyObject *ns, const char *name, long long *out, int count)
{
    PyObject *t = item(ns, name);
    if (t == NULL)
        return -1;
    if (!PyTuple_Check(t) || PyTuple_GET_SIZE(t) != count) {
        PyErr_Format(PyExc_TypeError, "decode_setup: %s must be a tuple of %d ints", name, count);
        return -1;
    }
    for (int i = 0; i < count; i++) {
        out[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(t, i));
        if (out[i] == -1 && PyErr_Occurred())
            return -1;
    }
    return 0;
}

/* decode_setup(namespace) -> the method descriptor of `dec` for `_Decoder`. */
PyObject *
mod_decode_setup(PyObject *mod, PyObject *ns)
{
    if (!PyDict_Check(ns)) {
        PyErr_SetString(PyExc_TypeError, "decode_setup(namespace: dict)");
        return NULL;
    }
    PyObject *decoder = item(ns, "Decoder"), *budget = item(ns, "Budget");
    PyObject *error = item(ns, "DecodeError"), *count = item(ns, "count");
    PyObject *frame = item(ns, "registered_frame"), *registered = item(ns, "registered");
    PyObject *dec = item(ns, "dec"), *depth = item(ns, "MAX_DEPTH");
    PyObject *same = item(ns, "MAX_SAME_HASH");
    if (!decoder || !budget || !error || !count || !frame || !registered || !dec || !depth
        || !same)
        return NULL;
    if (!PyType_Check(decoder) || !PyType_Check(budget) || !PyType_Check(error)) {
        PyErr_SetString(PyExc_TypeError, "coroutine._speedups.decode_setup: bad namespace");
        return NULL;
    }
    long long scalars[4], boxes[15];
    max_depth = PyLong_AsLong(depth);
    max_same_hash = PyLong_AsLong(same);
    if (PyErr_Occurred() || costs(ns, "scalar_costs", scalars, 4) < 0
        || costs(ns, "container_costs", boxes, 15) < 0)
        return NULL;
    if (max_depth < 0 || max_depth > STACK_MAX || max_same_hash < 0) {
        PyErr_SetString(PyExc_ValueError, "decode_setup: MAX_DEPTH must be at most 128");
        return NULL;
    }
    PyTypeObject *dt = (PyTypeObject *)decoder, *bt = (PyTypeObject *)budget;
    Py_ssize_t offs[6];
    if (offset_of(dt, "buf", &offs[0]) || offset_of(dt, "pos", &offs[1])
        || offset_of(dt, "end", &offs[2]) || offset_of(dt, "registry", &offs[3])
        || offset_of(dt, "budget", &offs[4]) || offset_of(bt, "left", &offs[5]))
        return NULL;
    if (s_charge == NULL && (s_charge = PyUnicode_InternFromString("charge")) == NULL)
        return NULL;
    d_buf = offs[0], d_pos = offs[1], d_end = offs[2], d_registry = offs[3], d_budget = offs[4];
    b_left = offs[5];
    cost_int = scalars[0], cost_float = scalars[1], cost_str = scalars[2], cost_bytes = scalars[3];
    long long most = 0, most_per_item = 0;
    for (int i = 0; i < 4; i++)
        most = scalars[i] > most ? scalars[i] : most;
    for (int i = 0; i < 5; i++) {
        for (int j = 0; j < 3; j++) {
            cost_box[i][j] = boxes[3 * i + j];
            if (j < 2 && cost_box[i][j] > most)
                most = cost_box[i][j];
        }
        most_per_item = cost_box[i][2] > most_per_item ? cost_box[i][2] : most_per_item;
    }
    most_a_byte = most + most_per_item + 2;
    Py_XSETREF(DecoderType, (PyTypeObject *)Py_NewRef(decoder));
    Py_XSETREF(BudgetType, (PyTypeObject *)Py_NewRef(budget));
    Py_XSETREF(DecodeError, Py_NewRef(error));
    Py_XSETREF(py_count, Py_NewRef(count));
    Py_XSETREF(py_registered_frame, Py_NewRef(frame));
    Py_XSETREF(py_registered, Py_NewRef(registered));
    Py_XSETREF(py_dec, Py_NewRef(dec));
    return PyDescr_NewMethod(DecoderType, &dec_def);
}
