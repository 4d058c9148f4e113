/* The module functions the Python side calls: _driver.resume, _run.Run's loop, and
 * _new.create (the Coroutine and its Context built slot by slot), with the factory that
 * `New[R, S]` returns (`Factory`). */

#include "speedups.h"

PyObject *
mod_resume(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "resume(coro, value, exc, driver)");
        return NULL;
    }
    if (!check_ready())
        return NULL;
    int r = resume_body(args[0], args[1], args[2] == Py_None ? NULL : args[2],
                        args[3] == Py_None ? NULL : args[3]);
    return r < 0 ? NULL : PyBool_FromLong(r);
}

/* Run(coro, fn): _run.Run, statement for statement; `coroutine.Run` itself when the extension
 * is loaded, so that no Python frame of the library sits between the caller and the body. */
PyObject *
mod_run(PyObject *mod, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "Run() takes 2 positional arguments (coro, fn), got %zd",
                     nargs);
        return NULL;
    }
    if (!check_ready())
        return NULL;
    PyObject *coro = args[0], *fn = args[1];
    if (!PyObject_TypeCheck(coro, CoroType) || !PyCallable_Check(fn)) { /* refused */
        PyObject *a[2] = {coro, fn};
        PyObject *err = PyObject_Vectorcall(py_run_refused, a, 2, NULL);
        if (err != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(err), err);
            Py_DECREF(err);
        }
        return NULL;
    }
    PyObject *ctx = get_slot(coro, k_ctx, "_ctx");
    if (ctx == NULL)
        return NULL;
    Py_INCREF(ctx);
    PyObject *driver = NULL, *check = NULL, *form = NULL, *result = NULL;
    int going = next_op(coro, s_Next);
    if (going <= 0)
        goto done;
    check = Py_NewRef(SLOT(SLOT(ctx, c_sig), g_check_s));
    form = Py_NewRef(SLOT(SLOT(ctx, c_sig), g_s));
    driver = (PyObject *)PyGreenlet_GetCurrent();
    if (driver == NULL) {
        going = -1;
        goto done;
    }
    for (;;) {
        PyObject *sent = PyObject_CallOneArg(fn, SLOT(ctx, c_recv));
        if (sent != NULL && check != Py_None && !exact_instance(sent, form)) {
            PyObject *ok = PyObject_CallOneArg(check, sent);
            int t = ok == NULL ? -1 : PyObject_IsTrue(ok);
            Py_XDECREF(ok);
            if (t == 0) {
                PyObject *a[2] = {sent, SLOT(ctx, c_sig)};
                PyObject *err = PyObject_Vectorcall(py_bad_send, a, 2, NULL);
                if (err != NULL) {
                    PyErr_SetObject((PyObject *)Py_TYPE(err), err);
                    Py_DECREF(err);
                }
            }
            if (t != 1)
                Py_CLEAR(sent);
        }
        if (sent == NULL) { /* fn (or the check) raised */
            PyObject *exc = fetch_exc();
            if (PyErr_GivenExceptionMatches(exc, PyExc_Exception)) {
                if (SLOT(ctx, c_state) != SUSPENDED) { /* fn drove the coroutine itself */
                    restore_exc(exc);
                    going = -1;
                    goto done;
                }
                PyObject *saved = get_handled();
                set_handled(exc);
                going = resume_body(coro, NOTHING, exc, NULL);
                set_handled(saved);
                Py_XDECREF(saved);
                Py_DECREF(exc);
            }
            else { /* KeyboardInterrupt and the like: unwind the body, then raise */
                PyObject *saved = get_handled();
                set_handled(exc);
                PyObject *r = PyObject_CallMethodNoArgs(coro, s_close);
                set_handled(saved);
                Py_XDECREF(saved);
                if (r == NULL)
                    Py_DECREF(exc);
                else {
                    Py_DECREF(r);
                    restore_exc(exc);
                }
                going = -1;
                goto done;
            }
        }
        else {
            if (is_plain_suspended(ctx))
                going = resume_body(coro, sent, NULL, driver);
            else if (SLOT(ctx, c_state) == SUSPENDED)
                going = advance(coro, s_Next, sent);
            else
                going = 0;
            Py_DECREF(sent);
        }
        if (going <= 0)
            break;
    }
done:
    if (going == 0 && SLOT(ctx, c_stopping) == Py_True) { /* stopped: no result */
        PyObject *err = PyObject_CallOneArg(py_run_stopped, coro);
        if (err != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(err), err);
            Py_DECREF(err);
        }
    }
    else if (going == 0)
        result = Py_NewRef(SLOT(ctx, c_result));
    Py_XDECREF(check);
    Py_XDECREF(form);
    Py_XDECREF(driver);
    Py_DECREF(ctx);
    if (result == NULL)
        trim_raised();
    return result;
}

/* threading.get_ident(), as the int of the last call when the thread is the same: every
 * coroutine a thread makes shares one int (its value is all `_thread` is compared by),
 * rather than carrying its own (32 bytes per suspended coroutine). */
static PyObject *
thread_ident(void)
{
    static unsigned long last_ident;
    static PyObject *last; /* (a thread's ident may be reused by a later thread: same value) */
    unsigned long ident = PyThread_get_thread_ident();
    if (last == NULL || ident != last_ident) {
        PyObject *v = PyLong_FromUnsignedLong(ident);
        if (v == NULL)
            return NULL;
        Py_XSETREF(last, v);
        last_ident = ident;
    }
    return Py_NewRef(last);
}

/* _new.create(sig, with_return, fn, /, *, durable=None, version=None) */
PyObject *
mod_create(PyObject *mod, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (!ready || nargs != 3)
        goto slow;
    if (kwnames != NULL) {
        Py_ssize_t nk = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < nk; i++)
            if (args[nargs + i] != Py_None)
                goto slow;
    }
    /* _new.DURABLE, read in the module's dict (no attribute protocol; if it is not there,
     * the Python function reads it as Python does) */
    static dict_memo durable_memo;
    PyObject *flag = memo_lookup(&durable_memo, create_flags, s_DURABLE);
    int durable = flag == NULL ? -1 : PyObject_IsTrue(flag);
    if (durable != 0) {
        PyErr_Clear(); /* (if it raised, the Python function raises it again) */
        goto slow;
    }
    PyObject *sig = args[0], *with_return = args[1], *fn = args[2];
    int plain = 0;
    if (PyFunction_Check(fn)) {
        PyCodeObject *code = (PyCodeObject *)PyFunction_GET_CODE(fn);
        PyObject *defaults = PyFunction_GET_DEFAULTS(fn);
        PyObject *kwdefaults = PyFunction_GET_KW_DEFAULTS(fn);
        Py_ssize_t needs = code->co_argcount - (defaults ? PyTuple_GET_SIZE(defaults) : 0);
        needs += code->co_kwonlyargcount - (kwdefaults ? PyDict_GET_SIZE(kwdefaults) : 0);
        plain = needs <= 0;
    }
    if (!plain) {
        PyObject *a[2] = {fn, with_return};
        PyObject *r = PyObject_Vectorcall(py_check_entry, a, 2, NULL);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
    }
    /* object.__new__(Coroutine): the class is not abstract and gets no arguments, so what
     * object.__new__ does comes down to the allocation. The slots of the new objects are
     * empty: each is written without an old value to release. */
    PyObject *coro = new_instance(CoroType);
    if (coro == NULL)
        return NULL;
    SLOT(coro, k_g) = Py_NewRef(Py_None); /* first: __del__ reads it */
    SLOT(coro, k_fn) = Py_NewRef(fn);
    SLOT(coro, k_body) = Py_NewRef(fn);
    SLOT(coro, k_with_return) = Py_NewRef(with_return);
    PyObject *ctx = new_instance(CtxType);
    if (ctx == NULL)
        goto fail;
    SLOT(coro, k_ctx) = Py_NewRef(ctx);
    SLOT(ctx, c_sig) = Py_NewRef(sig);
    SLOT(ctx, c_state) = Py_NewRef(CREATED);
    SLOT(ctx, c_sent) = Py_NewRef(NOTHING);
    SLOT(ctx, c_recv) = Py_NewRef(Py_None);
    SLOT(ctx, c_result) = Py_NewRef(Py_None);
    SLOT(ctx, c_exc) = Py_NewRef(Py_None);
    SLOT(ctx, c_exit) = Py_NewRef(Py_None);
    SLOT(ctx, c_driver) = Py_NewRef(Py_None);
    SLOT(ctx, c_durable) = Py_NewRef(Py_None);
    SLOT(ctx, c_stopping) = Py_NewRef(Py_False);
    PyObject *v = thread_ident();
    if (v == NULL)
        goto fail;
    SLOT(ctx, c_thread) = v;
    v = PyLong_FromLong(0);
    SLOT(ctx, c_gid) = v;
    v = PyContext_CopyCurrent();
    if (v == NULL)
        goto fail;
    SLOT(ctx, c_vars) = v;
    v = PyWeakref_NewRef(coro, NULL);
    if (v == NULL)
        goto fail;
    SLOT(ctx, c_coro) = v;
    Py_DECREF(ctx);
    return coro;
fail:
    Py_XDECREF(ctx);
    Py_DECREF(coro);
    return NULL;
slow:
    return PyObject_Vectorcall(py_create, args, nargsf, kwnames);
}

/* functools.partial(create, sig, with_return), compiled: what `New[R, S]` returns (`_new._bind`
 * is this class with the extension). Called, it puts the two bound arguments in front of the
 * caller's and calls the compiled `create` directly: no second call through the function
 * object, and no argument array allocated for up to four arguments (partial copies them into
 * one and calls again). */
typedef struct {
    PyObject_HEAD
    PyObject *func;
    PyObject *args; /* (sig, with_return) */
    vectorcallfunc vectorcall;
} Factory;

static PyObject *
Factory_call(Factory *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t total = nargs + (kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames));
    PyObject *small[6], **stack = small;
    if (self->args == NULL) /* (cleared by the collector, reached from a finalizer) */
        return PyErr_Format(PyExc_RuntimeError, "a cleared coroutine factory was called");
    if (total > 4 && (stack = PyMem_New(PyObject *, total + 2)) == NULL)
        return PyErr_NoMemory();
    stack[0] = PyTuple_GET_ITEM(self->args, 0);
    stack[1] = PyTuple_GET_ITEM(self->args, 1);
    if (total > 0)
        memcpy(stack + 2, args, (size_t)total * sizeof(PyObject *));
    PyObject *made;
    if (PyCFunction_Check(self->func)
        && PyCFunction_GET_FUNCTION(self->func) == (PyCFunction)(void (*)(void))mod_create)
        made = mod_create(NULL, stack, (size_t)(nargs + 2), kwnames);
    else
        made = PyObject_Vectorcall(self->func, stack, (size_t)(nargs + 2), kwnames);
    if (stack != small)
        PyMem_Free(stack);
    return made;
}

static PyObject *
Factory_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *func, *sig, *with_return;
    if ((kwds != NULL && PyDict_GET_SIZE(kwds) != 0)
        || !PyArg_ParseTuple(args, "OOO:Factory", &func, &sig, &with_return))
        return PyErr_Format(PyExc_TypeError, "Factory(func, sig, with_return)");
    Factory *self = (Factory *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->func = Py_NewRef(func);
    self->args = PyTuple_Pack(2, sig, with_return);
    self->vectorcall = (vectorcallfunc)Factory_call;
    if (self->args == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
Factory_traverse(Factory *self, visitproc visit, void *arg)
{
    Py_VISIT(self->func);
    Py_VISIT(self->args);
    return 0;
}

static int
Factory_clear(Factory *self)
{
    Py_CLEAR(self->func);
    Py_CLEAR(self->args);
    return 0;
}

static void
Factory_dealloc(Factory *self)
{
    PyObject_GC_UnTrack(self);
    Factory_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Factory_repr(Factory *self)
{
    if (self->args == NULL)
        return PyUnicode_FromString("coroutine._speedups.Factory(<cleared>)");
    return PyUnicode_FromFormat("coroutine._speedups.Factory(%R, %R, %R)", self->func,
                                PyTuple_GET_ITEM(self->args, 0), PyTuple_GET_ITEM(self->args, 1));
}

static PyMemberDef Factory_members[] = {
    {"func", T_OBJECT, offsetof(Factory, func), READONLY, "the function called (create)"},
    {"args", T_OBJECT, offsetof(Factory, args), READONLY, "the bound arguments, in front"},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject FactoryType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "coroutine._speedups.Factory",
    .tp_basicsize = sizeof(Factory),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_HAVE_GC,
    .tp_vectorcall_offset = offsetof(Factory, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = Factory_new,
    .tp_dealloc = (destructor)Factory_dealloc,
    .tp_traverse = (traverseproc)Factory_traverse,
    .tp_clear = (inquiry)Factory_clear,
    .tp_repr = (reprfunc)Factory_repr,
    .tp_members = Factory_members,
    .tp_doc = "Factory(func, sig, with_return)\n--\n\n"
              "functools.partial(func, sig, with_return), calling the compiled create "
              "directly (what New[R, S] returns).",
};
