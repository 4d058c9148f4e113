/* The driver's side of the bridge: start and resume the body, and read what each switch came
 * back with (rules A1-A6 of _bridge.py); the Python helpers bound by aio_setup(); the module's
 * part (coroutine_aio_init, called by module.c). See aio.h. */

#include "aio.h"

PyObject *SIG_AWAIT, *thrown_type;
PyObject *a_mark, *a_throw, *a_close, *a_value, *a_exc;
PyObject *py_outside, *py_not_running, *py_awaitable_iter, *py_stop_error, *py_wrong_thread,
    *py_foreign, *py_abandoned;
int aio_ready;
Bridge *last;

/* Raise the exception that the Python builder `fn(arg)` returns. Always NULL. */
PyObject *
aio_raise(PyObject *fn, PyObject *arg)
{
    PyObject *err = arg ? PyObject_CallOneArg(fn, arg) : PyObject_CallNoArgs(fn);
    if (err != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(err), err);
        Py_DECREF(err);
    }
    return NULL;
}


/* A3: something was raised at the switch into the body. Returns -1 (with it raised). */
static int
recover(Bridge *self)
{
    if (self->body != NULL && is_dead(self->body)) { /* the body ended, raising it */
        self->state = B_DONE;
        Py_CLEAR(self->body);
        Py_CLEAR(self->waiter);
        if (PyErr_ExceptionMatches(PyExc_StopIteration)
            || PyErr_ExceptionMatches(PyExc_StopAsyncIteration)) { /* PEP 479 */
            PyObject *exc = fetch_exc();
            PyObject *err = PyObject_CallOneArg(py_stop_error, exc);
            if (err != NULL) {
                PyException_SetCause(err, Py_NewRef(exc));
                PyErr_SetObject((PyObject *)Py_TYPE(err), err); /* (its context: exc) */
                Py_DECREF(err);
            }
            Py_DECREF(exc);
        }
        return -1;
    }
    if (self->state == B_RUNNING) { /* the switch never happened */
        if (self->body != NULL && PyGreenlet_ACTIVE((PyGreenlet *)self->body))
            self->state = B_AWAITING;
        else {
            self->state = B_CREATED;
            Py_CLEAR(self->body);
            Py_CLEAR(self->waiter);
        }
    }
    return -1;
}

/* The body gives up for good, left where it waits (A6). Returns -1 (RuntimeError raised). */
static int
abandon(Bridge *self)
{
    PyObject *inner = self->inner;
    self->inner = NULL;
    self->state = B_DONE;
    Py_CLEAR(self->body);
    Py_CLEAR(self->waiter);
    if (inner != NULL && PyCoro_CheckExact(inner)) { /* never awaited: no warning */
        PyObject *r = PyObject_CallMethodNoArgs(inner, a_close);
        Py_XDECREF(r);
        PyErr_Clear();
    }
    Py_XDECREF(inner);
    aio_raise(py_abandoned, NULL);
    return -1;
}

/* A4: what the switch into the body came back with (consumed). 1: the body awaits (`inner`);
 * 0: it ended, *ended its return value; -1: raised. */
static int
landed(Bridge *self, PyObject *out, PyObject **ended)
{
    if (out == SIG_AWAIT) {
        Py_DECREF(out);
        self->state = B_AWAITING;
        return self->closing ? abandon(self) : 1;
    }
    if (self->body != NULL && is_dead(self->body)) {
        self->state = B_DONE;
        Py_CLEAR(self->body);
        Py_CLEAR(self->waiter);
        *ended = out;
        return 0;
    }
    abandon(self);
    PyErr_Clear();
    aio_raise(py_foreign, out);
    Py_DECREF(out);
    return -1;
}

/* A1, then A2. */
static int
adopt(Bridge *self, PyObject *driver)
{
    if (self->thread != PyThread_get_thread_ident()) {
        aio_raise(py_wrong_thread, NULL);
        return -1;
    }
    if (PyGreenlet_SetParent((PyGreenlet *)self->body, (PyGreenlet *)driver) < 0)
        return -1;
    Py_XSETREF(self->driver, Py_NewRef(driver));
    return 0;
}

/* Bridge.start: run fn(*args, **kwargs) in a new body greenlet; as `landed`. */
int
aio_start(Bridge *self, PyObject **ended)
{
    PyObject *driver = (PyObject *)PyGreenlet_GetCurrent();
    if (driver == NULL)
        return -1;
    PyObject *body = (PyObject *)PyGreenlet_New(self->fn, (PyGreenlet *)driver);
    PyObject *vars = NULL, *ref = NULL;
    if (body == NULL)
        goto fail;
    /* the body runs in the awaiting task's contextvars context */
    vars = gr_context.get ? gr_context.get(driver, gr_context.closure)
                          : PyObject_GetAttrString(driver, "gr_context");
    if (vars == NULL)
        goto fail;
    if ((gr_context.set ? gr_context.set(body, vars, gr_context.closure)
                        : PyObject_SetAttrString(body, "gr_context", vars))
        < 0)
        goto fail;
    ref = PyWeakref_NewRef((PyObject *)self, NULL);
    if (ref == NULL || PyObject_SetAttr(body, a_mark, ref) < 0)
        goto fail;
    Py_DECREF(ref);
    Py_DECREF(vars);
    Py_XSETREF(self->body, body);
    Py_XSETREF(self->waiter, Py_NewRef(body));
    Py_XSETREF(self->driver, driver);
    self->thread = PyThread_get_thread_ident();
    self->state = B_RUNNING; /* A3 */
    last = self;
    PyObject *kwargs = PyDict_GET_SIZE(self->kwargs) ? self->kwargs : NULL;
    Py_INCREF(body);
    PyObject *out = PyGreenlet_Switch((PyGreenlet *)body, self->args, kwargs);
    Py_DECREF(body);
    return out == NULL ? recover(self) : landed(self, out, ended);
fail:
    Py_XDECREF(ref);
    Py_XDECREF(vars);
    Py_XDECREF(body);
    Py_DECREF(driver);
    return -1;
}

/* Bridge.resume: switch into the greenlet waiting in await_ with `value`, or raising `exc`
 * there (A1-A3); as `landed` (A4). */
int
aio_resume(Bridge *self, PyObject *value, PyObject *exc, PyObject **ended)
{
    PyObject *driver = (PyObject *)PyGreenlet_GetCurrent();
    if (driver == NULL)
        return -1;
    int r = driver == self->driver ? 0 : adopt(self, driver);
    Py_DECREF(driver);
    if (r < 0)
        return -1;
    PyObject *thrown = NULL;
    if (exc != NULL) {
        if (PyErr_GivenExceptionMatches(exc, PyExc_GeneratorExit))
            self->closing = 1;
        if ((thrown = PyObject_CallOneArg(thrown_type, exc)) == NULL)
            return -1;
        value = thrown;
    }
    self->state = B_RUNNING; /* A3 */
    last = self;
    PyObject *waiter = Py_NewRef(self->waiter);
    PyObject *out = switch_to(waiter, value);
    Py_DECREF(waiter);
    Py_XDECREF(thrown);
    return out == NULL ? recover(self) : landed(self, out, ended);
}

/* What PyIter_Send on the awaitable in flight gave (`s`, `res`): its iterator is dropped
 * unless it yielded; its result or exception resumes the body (A5). */
int
aio_resumed_by(Bridge *self, PySendResult s, PyObject *res, PyObject **ended)
{
    Py_CLEAR(self->inner);
    if (s == PYGEN_RETURN) {
        int r = aio_resume(self, res, NULL, ended);
        Py_DECREF(res);
        return r;
    }
    PyObject *exc = fetch_exc();
    int r = aio_resume(self, NULL, exc, ended);
    Py_DECREF(exc);
    return r;
}

/* The driver's loop, after a start or resume gave `r`: await what the body awaits, resuming
 * it with each result, until an awaitable suspends (PYGEN_NEXT: *result is what it yielded,
 * for the event loop) or the body ends (PYGEN_RETURN: *result is its return value). */
PySendResult
aio_await_loop(Bridge *self, int r, PyObject *ended, PyObject **result)
{
    while (r == 1) {
        PyObject *it = Py_NewRef(self->inner), *res = NULL;
        PySendResult s = PyIter_Send(it, Py_None, &res);
        Py_DECREF(it);
        if (s == PYGEN_NEXT) {
            *result = res;
            return PYGEN_NEXT;
        }
        r = aio_resumed_by(self, s, res, &ended);
    }
    if (r < 0)
        return PYGEN_ERROR;
    *result = ended;
    return PYGEN_RETURN;
}

/* -- setup ------------------------------------------------------------------------------- */

static int
take_fn(PyObject *ns, const char *name, PyObject **out)
{
    PyObject *v = PyDict_GetItemString(ns, name);
    if (v == NULL) {
        PyErr_Format(PyExc_KeyError, "coroutine._speedups.aio_setup: %s missing", name);
        return -1;
    }
    Py_XSETREF(*out, Py_NewRef(v));
    return 0;
}

static PyObject *
aio_setup(PyObject *mod, PyObject *ns)
{
    if (!PyDict_Check(ns))
        return PyErr_Format(PyExc_TypeError, "aio_setup(namespace: dict)");
    PyObject *mark = NULL;
    if (take_fn(ns, "outside", &py_outside) || take_fn(ns, "not_running", &py_not_running)
        || take_fn(ns, "awaitable_iter", &py_awaitable_iter)
        || take_fn(ns, "stop_error", &py_stop_error)
        || take_fn(ns, "wrong_thread", &py_wrong_thread) || take_fn(ns, "foreign", &py_foreign)
        || take_fn(ns, "abandoned", &py_abandoned) || take_fn(ns, "Thrown", &thrown_type)
        || take_fn(ns, "MARK", &mark))
        return NULL;
    if (!PyType_Check(thrown_type)) {
        Py_DECREF(mark);
        return PyErr_Format(PyExc_TypeError, "aio_setup: Thrown must be a class");
    }
    if (!PyUnicode_Check(mark)) {
        Py_DECREF(mark);
        return PyErr_Format(PyExc_TypeError, "aio_setup: MARK must be a str");
    }
    PyUnicode_InternInPlace(&mark);
    Py_XSETREF(a_mark, mark);
    aio_ready = 1;
    Py_RETURN_NONE;
}

static PyMethodDef aio_functions[] = {
    {"await_", (PyCFunction)aio_await, METH_O, aio_await_doc},
    {"aio_setup", aio_setup, METH_O,
     "aio_setup($module, namespace, /)\n--\n\nBind the bridge to its Python helpers (_bridge)."},
    {NULL, NULL, 0, NULL},
};

/* Called once by PyInit__speedups (module.c). */
int
coroutine_aio_init(PyObject *m)
{
    if (PyType_Ready(&AioBridgeType) < 0)
        return -1;
    if ((SIG_AWAIT = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type)) == NULL)
        return -1;
    if ((a_throw = PyUnicode_InternFromString("throw")) == NULL
        || (a_close = PyUnicode_InternFromString("close")) == NULL
        || (a_value = PyUnicode_InternFromString("value")) == NULL
        || (a_exc = PyUnicode_InternFromString("exc")) == NULL)
        return -1;
    if (PyModule_AddObjectRef(m, "Bridge", (PyObject *)&AioBridgeType) < 0)
        return -1;
    return PyModule_AddFunctions(m, aio_functions);
}
