/* The module: setup(), which binds to the Python runtime's objects (the states, the
 * reference functions, the slot offsets) and installs Coroutine's compiled methods, and
 * the module's initialisation (greenlet's C API imported through its capsule). */

#include "speedups.h"

/* -- the objects declared in speedups.h ----------------------------------------------------- */

void **coroutine_greenlet_api = NULL;
int ready = 0;
PyObject *CREATED, *SUSPENDED, *RUNNING, *DONE;
PyObject *NOTHING, *THROWN, *ABANDONED, *PARKED;
PyObject *CURRENT;
PyTypeObject *SignalType, *CoroType, *CtxType;
PyObject *py_recover, *py_ended, *py_adopt, *py_signalled, *py_killed;
PyObject *py_del, *py_create, *py_check_entry, *py_acquire, *py_bad_send, *py_resume;
PyObject *py_run_refused, *py_run_stopped;
PyObject *py_as_reported, *exc_coroutine_exit, *py_worker_main;
PyObject *py_trimmed, *py_throw, *py_close, *py_exit;
PyObject *create_flags;
PyObject *worker_local;
Py_ssize_t pool_cap;
PyObject *s_advance, *s_close, *s_pool, *s_gr_context, *s_local_key, *s___dict__;
PyObject *s_DURABLE;
PyObject *s_Next, *s_next, *s_send, *s_switch;
Py_ssize_t c_state, c_sig, c_stopping, c_durable, c_sent, c_driver, c_recv, c_exc, c_gid,
    c_vars, c_result, c_thread, c_coro, c_exit;
Py_ssize_t k_ctx, k_g, k_fn, k_body, k_with_return;
Py_ssize_t g_check_s, g_s;
PyTypeObject *worker_type;
PyObject *spare_args;
PyObject *coro_del_descr;
PyGetSetDef gr_context;

/* -- setup ---------------------------------------------------------------------------------- */

static int
slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *out)
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

static int
take(PyObject *ns, const char *name, PyObject **out)
{
    PyObject *v = PyDict_GetItemString(ns, name);
    if (v == NULL) {
        PyErr_Format(PyExc_KeyError, "coroutine._speedups.setup: %s missing", name);
        return -1;
    }
    Py_XSETREF(*out, Py_NewRef(v));
    return 0;
}

/* Each function's docstring, from `docs` (name: "name(text signature)\n--\n\n" then the
 * docstring, made by _accel from the Python function it stands for): so the compiled forms
 * document themselves as the reference does, from one text. The strings live as long as the
 * process (the definitions are static); setup runs once per process. */
static PyObject *doc_texts; /* a list of the bytes objects ml_doc points into */

static int
set_docs(PyMethodDef *defs, PyObject *docs)
{
    if (doc_texts == NULL && (doc_texts = PyList_New(0)) == NULL)
        return -1;
    for (PyMethodDef *m = defs; m->ml_name != NULL; m++) {
        PyObject *text = PyDict_GetItemString(docs, m->ml_name);
        if (text == NULL)
            continue; /* (this module's own functions: their docstrings are below) */
        PyObject *b = PyUnicode_Check(text) ? PyUnicode_AsUTF8String(text) : NULL;
        if (b == NULL || PyList_Append(doc_texts, b) < 0) {
            Py_XDECREF(b);
            if (!PyErr_Occurred())
                PyErr_Format(PyExc_TypeError, "coroutine._speedups.setup: bad doc of %s",
                             m->ml_name);
            return -1;
        }
        m->ml_doc = PyBytes_AS_STRING(b);
        Py_DECREF(b);
    }
    return 0;
}

static PyObject *
mod_setup(PyObject *mod, PyObject *ns)
{
    if (!PyDict_Check(ns)) {
        PyErr_SetString(PyExc_TypeError, "setup(namespace: dict)");
        return NULL;
    }
    PyObject *coro_t = NULL, *ctx_t = NULL, *sig_t = NULL, *signal_t = NULL, *cap = NULL;
    PyObject *docs = NULL;
    if (take(ns, "CREATED", &CREATED) || take(ns, "SUSPENDED", &SUSPENDED)
        || take(ns, "RUNNING", &RUNNING) || take(ns, "DONE", &DONE)
        || take(ns, "NOTHING", &NOTHING) || take(ns, "THROWN", &THROWN)
        || take(ns, "ABANDONED", &ABANDONED) || take(ns, "PARKED", &PARKED)
        || take(ns, "CURRENT", &CURRENT) || take(ns, "recover", &py_recover)
        || take(ns, "ended", &py_ended) || take(ns, "adopt", &py_adopt)
        || take(ns, "signalled", &py_signalled) || take(ns, "killed", &py_killed)
        || take(ns, "del", &py_del) || take(ns, "create", &py_create) || take(ns, "check_entry", &py_check_entry)
        || take(ns, "acquire", &py_acquire) || take(ns, "bad_send", &py_bad_send)
        || take(ns, "run_refused", &py_run_refused) || take(ns, "run_stopped", &py_run_stopped)
        || take(ns, "resume", &py_resume) || take(ns, "flags", &create_flags)
        || take(ns, "local", &worker_local) || take(ns, "Coroutine", &coro_t)
        || take(ns, "Context", &ctx_t) || take(ns, "Signature", &sig_t)
        || take(ns, "Signal", &signal_t) || take(ns, "POOL_CAP", &cap)
        || take(ns, "as_reported", &py_as_reported)
        || take(ns, "CoroutineExit", &exc_coroutine_exit) || take(ns, "trimmed", &py_trimmed)
        || take(ns, "worker_main", &py_worker_main)
        || take(ns, "throw", &py_throw) || take(ns, "close", &py_close)
        || take(ns, "exit", &py_exit) || take(ns, "docs", &docs))
        goto fail;
    if (!PyType_Check(coro_t) || !PyType_Check(ctx_t) || !PyType_Check(sig_t)
        || !PyType_Check(signal_t) || !PyContextVar_CheckExact(CURRENT)
        || !PyDict_CheckExact(create_flags) || !PyDict_Check(docs)) {
        PyErr_SetString(PyExc_TypeError, "coroutine._speedups.setup: bad namespace");
        goto fail;
    }
    pool_cap = PyLong_AsSsize_t(cap);
    if (pool_cap == -1 && PyErr_Occurred())
        goto fail;
    CoroType = (PyTypeObject *)coro_t;
    CtxType = (PyTypeObject *)ctx_t;
    SignalType = (PyTypeObject *)signal_t;
    PyTypeObject *st = (PyTypeObject *)sig_t;
    if (slot_offset(CtxType, "_state", &c_state) || slot_offset(CtxType, "_sig", &c_sig)
        || slot_offset(CtxType, "_stopping", &c_stopping)
        || slot_offset(CtxType, "_durable", &c_durable)
        || slot_offset(CtxType, "_sent", &c_sent) || slot_offset(CtxType, "_driver", &c_driver)
        || slot_offset(CtxType, "_recv", &c_recv) || slot_offset(CtxType, "_exc", &c_exc)
        || slot_offset(CtxType, "_gid", &c_gid) || slot_offset(CtxType, "_vars", &c_vars)
        || slot_offset(CtxType, "_result", &c_result)
        || slot_offset(CtxType, "_thread", &c_thread) || slot_offset(CtxType, "_coro", &c_coro)
        || slot_offset(CtxType, "_exit", &c_exit) || slot_offset(CoroType, "_ctx", &k_ctx)
        || slot_offset(CoroType, "_g", &k_g) || slot_offset(CoroType, "_fn", &k_fn)
        || slot_offset(CoroType, "_body", &k_body)
        || slot_offset(CoroType, "_with_return", &k_with_return)
        || slot_offset(st, "check_s", &g_check_s) || slot_offset(st, "s", &g_s))
        goto fail;
    if (set_docs(coro_methods, docs) < 0 || set_docs(module_methods, docs) < 0)
        goto fail;
    Py_CLEAR(docs);
    /* The methods, as method descriptors of Coroutine (they bind like Python methods). */
    for (PyMethodDef *m = coro_methods; m->ml_name != NULL; m++) {
        PyObject *descr = PyDescr_NewMethod(CoroType, m);
        if (descr == NULL)
            goto fail;
        int r = PyObject_SetAttrString(coro_t, m->ml_name, descr);
        if (r == 0 && m == coro_methods) /* __del__ */
            Py_XSETREF(coro_del_descr, Py_NewRef(descr));
        Py_DECREF(descr);
        if (r < 0)
            goto fail;
    }
    /* Setting __del__ made tp_finalize the generic slot, which looks __del__ up by name at
     * every finalization; this one calls Coro_del's code directly (methods.c). */
    CoroType->tp_finalize = Coro_finalize;
    install_dealloc(CoroType, 0); /* (methods.c) */
    install_dealloc(CtxType, 1);
    /* The types stay alive: the module keeps a reference to each (never released). */
    ready = 1;
    Py_RETURN_NONE;
fail:
    Py_XDECREF(coro_t), Py_XDECREF(ctx_t), Py_XDECREF(sig_t), Py_XDECREF(signal_t);
    Py_XDECREF(cap), Py_XDECREF(docs);
    return NULL;
}

PyMethodDef module_methods[] = {
    {"setup", mod_setup, METH_O,
     "setup($module, namespace, /)\n--\n\n"
     "Bind to the Python runtime's objects; install the methods."},
    {"resume", (PyCFunction)(void (*)(void))mod_resume, METH_FASTCALL,
     "resume($module, coro, value, exc, driver, /)\n--\n\n_driver.resume, compiled."},
    {"Run", (PyCFunction)(void (*)(void))mod_run, METH_FASTCALL, NULL}, /* _run.Run's */
    {"create", (PyCFunction)(void (*)(void))mod_create, METH_FASTCALL | METH_KEYWORDS,
     "create($module, sig, with_return, fn, /, *, durable=None, version=None)\n--\n\n"
     "_new.create, compiled."},
    {"decode_setup", mod_decode_setup, METH_O,
     "decode_setup($module, namespace, /)\n--\n\n"
     "Bind to durable._decode's objects; return _Decoder.dec, compiled (decode.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "coroutine._speedups",
    "The switch protocol's hot paths, compiled (see the comment at the top of _speedups_c/speedups.h).",
    -1, module_methods,
};

#define INTERN(var, text)                                    \
    do {                                                     \
        if ((var = PyUnicode_InternFromString(text)) == NULL) \
            return NULL;                                     \
    } while (0)

int coroutine_aio_init(PyObject *m); /* aio.c: coroutine.aio's driver, its own concern */

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyGreenlet_Import();
    if (_PyGreenlet_API == NULL)
        return NULL;
    PyObject *descr = PyDict_GetItemString(PyGreenlet_Type.tp_dict, "gr_context");
    if (descr != NULL && PyObject_TypeCheck(descr, &PyGetSetDescr_Type))
        gr_context = *((PyGetSetDescrObject *)descr)->d_getset; /* (else: by name) */
    YieldTableType.tp_base = &PyDict_Type;
    if (PyType_Ready(&YieldSiteType) < 0 || PyType_Ready(&YieldTableType) < 0
        || PyType_Ready(&SubscriptType) < 0 || PyType_Ready(&FactoryType) < 0)
        return NULL;
    INTERN(s_advance, "_advance");
    INTERN(s_close, "close");
    INTERN(s_pool, "pool");
    INTERN(s_local_key, "coroutine._speedups: _worker._local.__dict__");
    INTERN(s___dict__, "__dict__");
    INTERN(s_gr_context, "gr_context");
    INTERN(s_DURABLE, "DURABLE");
    INTERN(s_Next, "Next");
    INTERN(s_next, "next");
    INTERN(s_send, "send");
    INTERN(s_switch, "switch");
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL)
        return NULL;
    if (PyModule_AddFunctions(m, worker_methods) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "YieldSite", (PyObject *)&YieldSiteType) < 0
        || PyModule_AddObjectRef(m, "YieldTable", (PyObject *)&YieldTableType) < 0
        || PyModule_AddObjectRef(m, "Subscript", (PyObject *)&SubscriptType) < 0
        || PyModule_AddObjectRef(m, "Factory", (PyObject *)&FactoryType) < 0
        || coroutine_aio_init(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
