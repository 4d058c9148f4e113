/* Coroutine's driving methods (_coroutine.py): Next, Recv, Send, __next__, send, __del__,
 * and throw, close, __exit__. The first run their common case here and call the Python
 * `_advance` for the rest; the last three call the Python methods as written (they are off the
 * hot path). Each takes the library's frames out of an exception on its way out
 * (`trim_raised`): being C, it adds none of its own, so the caller's line comes next. */

#include "speedups.h"

/* A created coroutine that `Next` may start here: as `_advance` would, minus its checks. */
static inline int
is_plain_created(PyObject *ctx)
{
    return SLOT(ctx, c_state) == CREATED && SLOT(ctx, c_stopping) == Py_False
           && SLOT(ctx, c_durable) == Py_None && same_thread(ctx);
}

int
advance(PyObject *self, PyObject *op, PyObject *value) /* self._advance(op, value) */
{
    PyObject *args[3] = {self, op, value};
    PyObject *r = PyObject_VectorcallMethod(s_advance, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                            NULL);
    if (r == NULL)
        return -1;
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

int
next_op(PyObject *self, PyObject *op) /* Next's body: 1, 0, -1 */
{
    PyObject *ctx = get_slot(self, k_ctx, "_ctx");
    if (ctx == NULL)
        return -1;
    if (is_plain_suspended(ctx)) {
        PyObject *sent = Py_NewRef(SLOT(ctx, c_sent));
        int r = resume_body(self, sent, NULL, NULL);
        Py_DECREF(sent);
        return r;
    }
    if (is_plain_created(ctx))
        return start_body(self, ctx);
    return advance(self, op, NOTHING);
}

static PyObject *
Coro_Next(PyObject *self, PyObject *unused)
{
    int r = next_op(self, s_Next);
    if (r < 0) {
        trim_raised();
        return NULL;
    }
    return PyBool_FromLong(r);
}

static PyObject *
Coro_Recv(PyObject *self, PyObject *unused)
{
    PyObject *ctx = get_slot(self, k_ctx, "_ctx");
    return ctx == NULL ? NULL : Py_NewRef(SLOT(ctx, c_recv));
}

static int
check_send(PyObject *ctx, PyObject *value) /* Send's type check: 0 ok, -1 raised */
{
    PyObject *sig = SLOT(ctx, c_sig);
    PyObject *check = SLOT(sig, g_check_s);
    if (check == Py_None || exact_instance(value, SLOT(sig, g_s)))
        return 0;
    PyObject *r = PyObject_CallOneArg(check, value);
    if (r == NULL)
        return -1;
    int ok = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (ok != 0)
        return ok < 0 ? -1 : 0;
    PyObject *args[2] = {value, sig};
    PyObject *err = PyObject_Vectorcall(py_bad_send, args, 2, NULL);
    if (err != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(err), err);
        Py_DECREF(err);
    }
    return -1;
}

static PyObject *
Coro_Send(PyObject *self, PyObject *value)
{
    PyObject *ctx = get_slot(self, k_ctx, "_ctx");
    if (ctx == NULL || check_send(ctx, value) < 0)
        return NULL;
    set_slot(ctx, c_sent, value);
    Py_RETURN_NONE;
}

static PyObject *
stop_iteration(PyObject *ctx) /* raise StopIteration(ctx._result) */
{
    PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, SLOT(ctx, c_result));
    if (e != NULL) {
        PyErr_SetObject(PyExc_StopIteration, e);
        Py_DECREF(e);
    }
    return NULL;
}

/* What `__next__` and `send` return after driving: the value yielded (r > 0), or StopIteration
 * with `Result()` (r == 0), or NULL with the error set (r < 0). Takes a reference to `ctx`. */
static PyObject *
recv_or_stop(PyObject *ctx, int r)
{
    PyObject *out = NULL;
    if (r > 0)
        out = Py_NewRef(SLOT(ctx, c_recv));
    else if (r == 0)
        stop_iteration(ctx);
    else
        trim_raised();
    Py_DECREF(ctx);
    return out;
}

static PyObject *
Coro_next(PyObject *self, PyObject *unused) /* __next__ */
{
    PyObject *ctx = get_slot(self, k_ctx, "_ctx");
    if (ctx == NULL)
        return NULL;
    Py_INCREF(ctx);
    int r = next_op(self, s_next);
    return recv_or_stop(ctx, r);
}

static PyObject *
Coro_send(PyObject *self, PyObject *value)
{
    PyObject *ctx = get_slot(self, k_ctx, "_ctx");
    if (ctx == NULL)
        return NULL;
    if (SLOT(ctx, c_state) == CREATED && value == Py_None)
        return Coro_next(self, NULL);
    if (check_send(ctx, value) < 0)
        return NULL;
    Py_INCREF(ctx);
    int r;
    if (is_plain_suspended(ctx))
        r = resume_body(self, value, NULL, NULL);
    else
        r = advance(self, s_send, value);
    return recv_or_stop(ctx, r);
}

/* __del__: the common case (created or done: nothing to unwind) without a Python frame; the
 * Python `__del__` for a body to unwind. */
static PyObject *
Coro_del(PyObject *self, PyObject *unused)
{
    PyObject *g = SLOT(self, k_g);
    if (g == NULL || g == Py_None)
        Py_RETURN_NONE;
    return PyObject_CallOneArg(py_del, self);
}

/* Coroutine's tp_finalize, installed over the generic slot that looks `__del__` up and calls
 * it: what that slot does (the pending exception saved and restored, a failure reported as
 * unraisable in the name of `__del__`), with Coro_del's common case inlined. */
void
Coro_finalize(PyObject *self)
{
    PyObject *g = SLOT(self, k_g);
    if (g == NULL || g == Py_None)
        return;
    PyObject *saved = PyErr_Occurred() ? fetch_exc() : NULL;
    PyObject *r = PyObject_CallOneArg(py_del, self);
    if (r == NULL)
        PyErr_WriteUnraisable(coro_del_descr);
    Py_XDECREF(r);
    if (saved != NULL)
        restore_exc(saved);
}

/* Coroutine's and Context's tp_dealloc, in place of the generic one (CPython's
 * subtype_dealloc, about 300 instructions an object under callgrind on 3.11), doing what it
 * does for a class of __slots__ and __weakref__ directly under `object`: untrack, the
 * trashcan, the finalizer (Coroutine's: skipped when Coro_finalize has nothing to do), the
 * weak references cleared, the slots cleared in their order, the memory freed, the class
 * released. An instance of a subclass (none is made: both refuse __new__) is left to the
 * generic function, which calls this one as its base's dealloc once it has finalized it. */
static destructor generic_dealloc[2];
static Py_ssize_t slot_offsets[2][24], slot_counts[2];

/* Instances of exactly Coroutine and Context, freed by slots_dealloc and kept for the next
 * `create` (`new_instance`), as CPython keeps free lists for its own frequent objects
 * (tuples, floats, frames): a creation then costs the allocator and the collector's links
 * nothing, about 150 instructions an object on 3.13, where each of those reads the thread
 * state through a thread-local variable. A kept object has no reference, no slot, no weak
 * reference, is untracked, and holds its reference to its class. One that was finalized
 * is not kept: its finalizer would not run again. (Not from 3.14, whose object layout
 * this does not follow.) */
#if PY_VERSION_HEX < 0x030E0000
#define FREE_CAP 16
static PyObject *free_objects[2][FREE_CAP];
static int free_counts[2];
#endif

static void slots_dealloc(PyObject *self);

/* type->tp_alloc(type, 0) for Coroutine or Context: a kept instance if there is one. */
PyObject *
new_instance(PyTypeObject *type)
{
#if PY_VERSION_HEX < 0x030E0000
    int which = type == CtxType;
    if ((type == CoroType || which) && type->tp_dealloc == slots_dealloc && free_counts[which] > 0) {
        PyObject *op = free_objects[which][--free_counts[which]];
        _Py_NewReference(op);
        PyObject_GC_Track(op); /* as tp_alloc returns it */
        return op;
    }
#endif
    return type->tp_alloc(type, 0);
}

static void
slots_dealloc(PyObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    int which = type == CtxType;
    if (type != CoroType && !which) { /* a subclass: the generic function calls us back */
        generic_dealloc[PyType_IsSubtype(type, CtxType)](self);
        return;
    }
    PyObject_GC_UnTrack(self);
    Py_TRASHCAN_BEGIN(self, slots_dealloc)
    if (type->tp_finalize != NULL
        && (type->tp_finalize != Coro_finalize
            || (SLOT(self, k_g) != NULL && SLOT(self, k_g) != Py_None))) {
        PyObject_GC_Track(self);
        if (PyObject_CallFinalizerFromDealloc(self) < 0)
            goto done; /* resurrected */
        PyObject_GC_UnTrack(self);
    }
    if (*(PyObject **)((char *)self + type->tp_weaklistoffset) != NULL) {
        PyObject_ClearWeakRefs(self);
        /* (made by a callback of those: cleared too, as the generic function does) */
        while (*(PyObject **)((char *)self + type->tp_weaklistoffset) != NULL)
            PyObject_ClearWeakRefs(self);
    }
    for (Py_ssize_t i = 0; i < slot_counts[which]; i++) {
        PyObject **addr = (PyObject **)((char *)self + slot_offsets[which][i]);
        PyObject *obj = *addr;
        if (obj != NULL) {
            *addr = NULL;
            Py_DECREF(obj);
        }
    }
#if PY_VERSION_HEX < 0x030E0000
    if (free_counts[which] < FREE_CAP && !PyObject_GC_IsFinalized(self)) {
        free_objects[which][free_counts[which]++] = self;
        goto done;
    }
#endif
    type->tp_free(self);
    Py_DECREF(type);
done:
    Py_TRASHCAN_END
}

/* Whether the base `t` of a class adds nothing to free: no slot, no instance dictionary,
 * no weak reference list. Then its own deallocation, if it has one (3.12's compiled Generic:
 * untrack, free, release the class), can only do what slots_dealloc does after the slots. */
static int
adds_nothing(PyTypeObject *t)
{
    return t->tp_dictoffset == 0 && t->tp_weaklistoffset == 0 && t->tp_itemsize == 0
           && t->tp_basicsize == PyBaseObject_Type.tp_basicsize;
}

/* Put slots_dealloc in place for Coroutine (which = 0) or Context (1), if the class has the
 * shape it handles: __slots__ and __weakref__ directly under `object` (through Generic,
 * which adds nothing). Otherwise the generic function stays. */
int
install_dealloc(PyTypeObject *type, int which)
{
    Py_ssize_t n = 0;
    if (type->tp_dictoffset != 0)
        return 0;
    for (PyTypeObject *t = type->tp_base; t != &PyBaseObject_Type; t = t->tp_base) {
        if (!adds_nothing(t))
            return 0;
    }
    /* (from 3.12, `__weakref__` in __slots__ makes a managed weak reference list: a
     * negative tp_weaklistoffset, into the pre-header, read at the same self + offset) */
    if (!(type->tp_flags & Py_TPFLAGS_HEAPTYPE) || type->tp_weaklistoffset == 0
        || type->tp_del != NULL)
        return 0;
#ifdef Py_TPFLAGS_MANAGED_DICT
    if (type->tp_flags & Py_TPFLAGS_MANAGED_DICT)
        return 0;
#endif
    PyMemberDef *mp = type->tp_members; /* (a class's own, for __slots__: Py_SIZE(type) of them) */
    for (Py_ssize_t i = 0; i < Py_SIZE(type); i++, mp++) {
        if (mp->type != T_OBJECT_EX || (mp->flags & READONLY))
            continue;
        if (n == (Py_ssize_t)(sizeof(slot_offsets[0]) / sizeof(slot_offsets[0][0])))
            return 0;
        slot_offsets[which][n++] = mp->offset;
    }
    slot_counts[which] = n;
    generic_dealloc[which] = type->tp_dealloc;
    type->tp_dealloc = slots_dealloc;
    return 1;
}

/* A Python method as written, called from C: its frames, and those of the library under
 * it, come out of an exception it raises. */
static PyObject *
call_trimmed(PyObject *fn, PyObject *const *args, size_t nargs)
{
    PyObject *r = PyObject_Vectorcall(fn, args, nargs, NULL);
    if (r == NULL)
        trim_raised();
    return r;
}

static PyObject *
Coro_throw(PyObject *self, PyObject *exc)
{
    PyObject *args[2] = {self, exc};
    return call_trimmed(py_throw, args, 2);
}

static PyObject *
Coro_close(PyObject *self, PyObject *unused)
{
    return call_trimmed(py_close, &self, 1);
}

static PyObject *
Coro_exit(PyObject *self, PyObject *exc_info) /* the Python method reads none of exc_info */
{
    return call_trimmed(py_exit, &self, 1);
}

/* The docstrings and text signatures are those of the Python methods, set by setup(). */
PyMethodDef coro_methods[] = {
    {"__del__", Coro_del, METH_NOARGS, NULL},
    {"Next", Coro_Next, METH_NOARGS, NULL},
    {"Recv", Coro_Recv, METH_NOARGS, NULL},
    {"Send", Coro_Send, METH_O, NULL},
    {"__next__", Coro_next, METH_NOARGS, NULL},
    {"send", Coro_send, METH_O, NULL},
    {"throw", Coro_throw, METH_O, NULL},
    {"close", Coro_close, METH_NOARGS, NULL},
    {"__exit__", Coro_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};
