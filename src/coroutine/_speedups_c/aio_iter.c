/* The Bridge type: the iterator the task's `await` delegates to, doing PEP 380's delegation
 * by hand (send, throw and close go to the awaitable in flight, what it raises to the body),
 * and its finalizer (A6). See aio.h. */

#include "aio.h"

static int
refuse(Bridge *self) /* the states in which the task cannot step the driver: -1, raised */
{
    if (self->state == B_RUNNING)
        PyErr_SetString(PyExc_ValueError, "run_sync's driver is already running");
    else
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse an already awaited run_sync");
    return -1;
}

static PySendResult
Bridge_am_send(Bridge *self, PyObject *arg, PyObject **result)
{
    PyObject *ended = NULL, *res = NULL;
    if (self->state == B_AWAITING && self->inner != NULL) { /* the common case */
        PyObject *it = Py_NewRef(self->inner);
        PySendResult s = PyIter_Send(it, arg, &res);
        Py_DECREF(it);
        if (s == PYGEN_NEXT) {
            *result = res;
            return PYGEN_NEXT;
        }
        int r = aio_resumed_by(self, s, res, &ended); /* (before `ended` is read) */
        return aio_await_loop(self, r, ended, result);
    }
    if (self->state == B_CREATED) {
        if (arg != Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "can't send non-None value to a just-started coroutine");
            return PYGEN_ERROR;
        }
        int r = aio_start(self, &ended);
        return aio_await_loop(self, r, ended, result);
    }
    refuse(self);
    return PYGEN_ERROR;
}

static PyObject *
returned(PySendResult s, PyObject *result) /* a method's answer: the value or StopIteration */
{
    if (s == PYGEN_NEXT)
        return result;
    if (s == PYGEN_RETURN) {
        PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
        Py_DECREF(result);
        if (stop != NULL) {
            PyErr_SetObject(PyExc_StopIteration, stop);
            Py_DECREF(stop);
        }
    }
    return NULL;
}

static PyObject *
Bridge_iternext(Bridge *self)
{
    PyObject *result = NULL;
    PySendResult s = Bridge_am_send(self, Py_None, &result);
    if (s == PYGEN_RETURN && result == Py_None) {
        Py_DECREF(result);
        return NULL; /* exhausted, with None */
    }
    return returned(s, result);
}

static PyObject *
Bridge_send(Bridge *self, PyObject *arg)
{
    PyObject *result = NULL;
    PySendResult s = Bridge_am_send(self, arg, &result);
    return returned(s, result); /* (not in one expression: `result` is read after) */
}

/* iterator.close(), if it has one: 0, or -1 with what it raised. */
static int
close_iter(PyObject *it)
{
    PyObject *meth = PyObject_GetAttr(it, a_close);
    if (meth == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    PyObject *r = PyObject_CallNoArgs(meth);
    Py_DECREF(meth);
    Py_XDECREF(r);
    return r == NULL ? -1 : 0;
}

/* throw(exc) into the awaitable in flight (PEP 380), the body getting what comes out. */
static int
throw_in(Bridge *self, PyObject *exc, PyObject **ended, PyObject **yielded)
{
    PyObject *it = self->inner;
    if (it == NULL)
        return aio_resume(self, NULL, exc, ended);
    self->inner = NULL;
    if (PyErr_GivenExceptionMatches(exc, PyExc_GeneratorExit)) {
        int r = close_iter(it);
        Py_DECREF(it);
        if (r == 0)
            return aio_resume(self, NULL, exc, ended);
        PyObject *err = fetch_exc();
        r = aio_resume(self, NULL, err, ended);
        Py_DECREF(err);
        return r;
    }
    PyObject *meth = PyObject_GetAttr(it, a_throw);
    if (meth == NULL) {
        Py_DECREF(it);
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return aio_resume(self, NULL, exc, ended);
    }
    PyObject *res = PyObject_CallOneArg(meth, exc);
    Py_DECREF(meth);
    if (res != NULL) { /* it yielded: still in flight */
        self->inner = it;
        *yielded = res;
        return 2;
    }
    Py_DECREF(it);
    if (!PyErr_ExceptionMatches(PyExc_StopIteration))
        return aio_resumed_by(self, PYGEN_ERROR, NULL, ended);
    PyObject *stop = fetch_exc();
    res = PyObject_GetAttr(stop, a_value);
    Py_DECREF(stop);
    return res == NULL ? -1 : aio_resumed_by(self, PYGEN_RETURN, res, ended);
}

/* throw(exc), throw(type[, value[, traceback]]): as a coroutine's. */
static PyObject *
Bridge_throw(Bridge *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 3)
        return PyErr_Format(PyExc_TypeError, "throw expected 1 to 3 arguments, got %zd", nargs);
    PyObject *typ = args[0], *val = nargs > 1 ? args[1] : NULL, *tb = nargs > 2 ? args[2] : NULL;
    if (!PyExceptionClass_Check(typ) && !PyExceptionInstance_Check(typ))
        return PyErr_Format(PyExc_TypeError,
                            "exceptions must be classes or instances deriving from "
                            "BaseException, not %s",
                            Py_TYPE(typ)->tp_name);
    if (PyExceptionInstance_Check(typ) && val != NULL && val != Py_None)
        return PyErr_Format(PyExc_TypeError, "instance exception may not have a separate value");
    if (PyExceptionInstance_Check(typ))
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    else
        PyErr_SetObject(typ, val);
    PyObject *exc = fetch_exc();
    if (exc == NULL)
        return NULL;
    if (tb != NULL && tb != Py_None && PyException_SetTraceback(exc, tb) < 0) {
        Py_DECREF(exc);
        return NULL;
    }
    if (self->state == B_CREATED || self->state == B_DONE) {
        self->state = B_DONE;
        restore_exc(exc);
        return NULL;
    }
    if (self->state != B_AWAITING) {
        Py_DECREF(exc);
        refuse(self);
        return NULL;
    }
    PyObject *ended = NULL, *result = NULL;
    int r = throw_in(self, exc, &ended, &result);
    Py_DECREF(exc);
    if (r == 2)
        return result;
    PySendResult s = aio_await_loop(self, r, ended, &result);
    return returned(s, result);
}

/* close(): unwind a waiting body (GeneratorExit at its await_); 0, or -1 raised. */
static int
close_bridge(Bridge *self)
{
    if (self->state == B_CREATED || self->state == B_DONE) {
        self->state = B_DONE;
        return 0;
    }
    if (self->state != B_AWAITING)
        return refuse(self);
    self->closing = 1;
    PyObject *exc = PyObject_CallNoArgs(PyExc_GeneratorExit);
    if (exc == NULL)
        return -1;
    PyObject *ended = NULL, *yielded = NULL;
    int r = throw_in(self, exc, &ended, &yielded); /* (closing: never awaits again, never 1) */
    Py_DECREF(exc);
    if (r >= 0) {
        Py_XDECREF(ended);
        Py_XDECREF(yielded);
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_GeneratorExit))
        return -1;
    PyErr_Clear();
    return 0;
}

static PyObject *
Bridge_close(Bridge *self, PyObject *unused)
{
    return close_bridge(self) < 0 ? NULL : Py_NewRef(Py_None);
}

static PyObject *
Bridge_await(Bridge *self)
{
    return Py_NewRef(self);
}

/* A6: a bridge dropped while its body waits unwinds it, on the body's own thread. */
static void
Bridge_finalize(Bridge *self)
{
    if (self->state != B_AWAITING || self->body == NULL
        || !PyGreenlet_ACTIVE((PyGreenlet *)self->body)
        || self->thread != PyThread_get_thread_ident())
        return;
    PyObject *saved = fetch_exc();
    if (close_bridge(self) < 0)
        PyErr_WriteUnraisable((PyObject *)self);
    if (saved != NULL)
        restore_exc(saved);
}

static int
Bridge_traverse(Bridge *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fn);
    Py_VISIT(self->args);
    Py_VISIT(self->kwargs);
    Py_VISIT(self->body);
    Py_VISIT(self->waiter);
    Py_VISIT(self->driver);
    Py_VISIT(self->inner);
    return 0;
}

static int
Bridge_clear(Bridge *self)
{
    Py_CLEAR(self->fn);
    Py_CLEAR(self->args);
    Py_CLEAR(self->kwargs);
    Py_CLEAR(self->body);
    Py_CLEAR(self->waiter);
    Py_CLEAR(self->driver);
    Py_CLEAR(self->inner);
    return 0;
}

static void
Bridge_dealloc(Bridge *self)
{
    if (PyObject_CallFinalizerFromDealloc((PyObject *)self) < 0)
        return; /* resurrected */
    PyObject_GC_UnTrack(self);
    if (last == self)
        last = NULL;
    if (self->weakrefs != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    Bridge_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Bridge_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *fn, *fargs, *fkwargs;
    if (!aio_ready)
        return PyErr_Format(PyExc_RuntimeError, "coroutine._speedups.Bridge before aio_setup()");
    if (!PyArg_ParseTuple(args, "OO!O!:Bridge", &fn, &PyTuple_Type, &fargs, &PyDict_Type,
                          &fkwargs))
        return NULL;
    Bridge *self = (Bridge *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->fn = Py_NewRef(fn);
    self->args = Py_NewRef(fargs);
    self->kwargs = Py_NewRef(fkwargs);
    self->state = B_CREATED;
    self->thread = PyThread_get_thread_ident();
    return (PyObject *)self;
}

static PyObject *
Bridge_repr(Bridge *self)
{
    static const char *names[] = {"created", "running", "awaiting", "done"};
    return PyUnicode_FromFormat("<run_sync driver of %R, %s>", self->fn, names[self->state]);
}

static PyAsyncMethods Bridge_async = {
    .am_await = (unaryfunc)Bridge_await,
    .am_send = (sendfunc)Bridge_am_send,
};

static PyMethodDef Bridge_methods[] = {
    {"send", (PyCFunction)Bridge_send, METH_O,
     "send($self, value, /)\n--\n\nResume with a value (PEP 380)."},
    {"throw", (PyCFunction)(void (*)(void))Bridge_throw, METH_FASTCALL,
     "throw($self, typ, val=None, tb=None, /)\n--\n\n"
     "Raise an exception in the awaitable in flight, else in the body (PEP 380)."},
    {"close", (PyCFunction)Bridge_close, METH_NOARGS,
     "close($self, /)\n--\n\nUnwind a waiting body."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject AioBridgeType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "coroutine._speedups.Bridge",
    .tp_basicsize = sizeof(Bridge),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Bridge_new,
    .tp_dealloc = (destructor)Bridge_dealloc,
    .tp_finalize = (destructor)Bridge_finalize,
    .tp_traverse = (traverseproc)Bridge_traverse,
    .tp_clear = (inquiry)Bridge_clear,
    .tp_repr = (reprfunc)Bridge_repr,
    .tp_as_async = &Bridge_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Bridge_iternext,
    .tp_methods = Bridge_methods,
    .tp_weaklistoffset = offsetof(Bridge, weakrefs),
    .tp_doc = "run_sync's driver, compiled: the iterator its coroutine awaits (_bridge.drive).",
};

