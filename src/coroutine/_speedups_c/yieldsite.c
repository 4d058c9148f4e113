/* The yield site: `Yield[R, S]` as the compiled form of _yield.make_yield's function.
 * The yield's half of the switch protocol (rules B1, B2). */

#include "speedups.h"

/* CURRENT.get(), with a one-entry cache in front of it. `run_body` is the only code that
 * sets CURRENT, once, first thing in a body's fresh contextvars context (a test checks it):
 * so while the thread's current contextvars context is the one in which CURRENT was last
 * read as `ctx`, CURRENT.get() is still `ctx`, and the lookup (a HAMT search, about 180
 * instructions: greenlet invalidates the ContextVar's own cache on every switch) is skipped.
 * Weak references: the cache keeps neither the context nor the Context alive. */
static PyObject *cache_vars, *cache_ctx; /* weakrefs, or NULL */

static inline PyObject *
weak_target(PyObject *ref) /* borrowed; Py_None if dead (PyWeakref_GET_OBJECT, not deprecated) */
{
    PyObject *obj = ((PyWeakReference *)ref)->wr_object;
    return Py_REFCNT(obj) > 0 ? obj : Py_None;
}

static PyObject *
current_ctx(void) /* a new reference to CURRENT's value (None outside a body), or NULL */
{
    PyObject *vars = PyThreadState_Get()->context;
    if (vars != NULL && cache_vars != NULL && weak_target(cache_vars) == vars) {
        PyObject *ctx = weak_target(cache_ctx);
        if (ctx != Py_None)
            return Py_NewRef(ctx);
    }
    PyObject *ctx = NULL;
    if (PyContextVar_Get(CURRENT, NULL, &ctx) < 0)
        return NULL;
    if (ctx == NULL)
        return Py_NewRef(Py_None);
    if (vars != NULL && Py_TYPE(ctx) == CtxType) {
        PyObject *wv = PyWeakref_NewRef(vars, NULL);
        PyObject *wc = wv ? PyWeakref_NewRef(ctx, NULL) : NULL;
        if (wc == NULL) {
            Py_XDECREF(wv);
            Py_DECREF(ctx);
            return NULL;
        }
        Py_XSETREF(cache_vars, wv);
        Py_XSETREF(cache_ctx, wc);
    }
    return ctx;
}

typedef struct {
    PyObject_HEAD
    PyObject *site;      /* the site's Signature */
    PyObject *rule;      /* site.self_rule */
    PyObject *check;     /* site.self_rule.check, or None */
    PyObject *form;      /* site.r */
    PyObject *slow;      /* the Python yield function for this site: every other case */
    PyObject *name;      /* its __qualname__ */
    vectorcallfunc vectorcall;
} YieldSite;

static PyObject *
YieldSite_call(YieldSite *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames != NULL)
        return PyObject_Vectorcall(self->slow, args, nargsf, kwnames); /* its TypeError */
    PyObject *value = args[0], *ctx = current_ctx();
    if (ctx == NULL)
        return NULL;
    if (ctx == Py_None || Py_TYPE(ctx) != CtxType
        || SLOT(ctx, c_sig) != self->site)
        goto slow;
    if (self->check != Py_None && !exact_instance(value, self->form)) {
        PyObject *r = PyObject_CallOneArg(self->check, value);
        if (r == NULL) {
            Py_DECREF(ctx);
            return NULL;
        }
        int ok = PyObject_IsTrue(r);
        Py_DECREF(r);
        if (ok < 0) {
            Py_DECREF(ctx);
            return NULL;
        }
        if (!ok)
            goto slow; /* the Python function builds the error, with the user's site */
    }
    if (SLOT(ctx, c_stopping) != Py_False || SLOT(ctx, c_durable) != Py_None)
        goto slow;
    /* -- switch_out(ctx, value, rule): B1 then B2 -- */
    PyGreenlet *current = PyGreenlet_GetCurrent();
    if (current == NULL) {
        Py_DECREF(ctx);
        return NULL;
    }
    PyObject *gid = SLOT(ctx, c_gid);
    int mine = PyLong_CheckExact(gid) && PyLong_AsVoidPtr(gid) == (void *)current;
    Py_DECREF(current);
    if (!mine || SLOT(ctx, c_state) != RUNNING)
        goto slow; /* B1: the Python function refuses, having written nothing */
    PyObject *driver = SLOT(ctx, c_driver);
    if (driver == NULL || !is_greenlet(driver))
        goto slow;
    Py_INCREF(driver);
    PyObject *recv = Py_NewRef(SLOT(ctx, c_recv));
    set_slot(ctx, c_recv, value);
    set_slot(ctx, c_sent, NOTHING);
    set_slot(ctx, c_state, SUSPENDED); /* B2: last */
    PyObject *sent = switch_to(driver, value);
    Py_DECREF(driver);
    if (sent == NULL) {
        if (PyErr_ExceptionMatches(PyExc_GreenletExit)) { /* raise killed(ctx) from None */
            PyObject *exit = fetch_exc();
            PyObject *err = call_handling(exit, py_killed, &ctx, 1);
            if (err != NULL) {
                PyException_SetContext(err, exit); /* steals exit */
                PyException_SetCause(err, NULL);   /* from None */
                restore_exc(err);
            }
            else
                Py_DECREF(exit);
        }
        else if (SLOT(ctx, c_state) == SUSPENDED) { /* raised before the switch: never left */
            set_slot(ctx, c_state, RUNNING);
            set_slot(ctx, c_recv, recv);
        }
        Py_DECREF(recv);
        Py_DECREF(ctx);
        return NULL;
    }
    Py_DECREF(recv);
    if (Py_TYPE(sent) == SignalType) {
        PyObject *exc = SLOT(ctx, c_exc);
        /* A stop's CoroutineExit is raised by the Python `signalled`: its frame records the
         * exit's traceback even on 3.11, where an exception raised from C and swallowed by C
         * code (sqlite3) never gets one, and `_swallowed_exit` reads it. */
        if (sent == THROWN && exc != NULL && PyExceptionInstance_Check(exc)
            && exc != SLOT(ctx, c_exit)) {
            Py_INCREF(exc); /* raise it here, chained to what the body handles */
            set_slot(ctx, c_exc, Py_None);
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
            Py_DECREF(sent);
            Py_DECREF(ctx);
            return NULL;
        }
        PyObject *a[3] = {ctx, sent, self->rule};
        PyObject *r = PyObject_Vectorcall(py_signalled, a, 3, NULL);
        Py_DECREF(sent);
        Py_DECREF(ctx);
        return r;
    }
    Py_DECREF(ctx);
    return sent;
slow:
    Py_XDECREF(ctx);
    return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
}

static int
YieldSite_traverse(YieldSite *self, visitproc visit, void *arg)
{
    Py_VISIT(self->site);
    Py_VISIT(self->rule);
    Py_VISIT(self->check);
    Py_VISIT(self->form);
    Py_VISIT(self->slow);
    Py_VISIT(self->name);
    return 0;
}

static int
YieldSite_clear(YieldSite *self)
{
    Py_CLEAR(self->site);
    Py_CLEAR(self->rule);
    Py_CLEAR(self->check);
    Py_CLEAR(self->form);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->name);
    return 0;
}

static void
YieldSite_dealloc(YieldSite *self)
{
    PyObject_GC_UnTrack(self);
    YieldSite_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
YieldSite_repr(YieldSite *self)
{
    return PyUnicode_FromFormat("<compiled function %U>", self->name);
}

static PyObject *
YieldSite_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *site, *form, *rule, *slow, *name;
    if (!PyArg_ParseTuple(args, "OOO!OU:YieldSite", &site, &form, &PyTuple_Type, &rule, &slow,
                          &name))
        return NULL;
    if (PyTuple_GET_SIZE(rule) < 1) {
        PyErr_SetString(PyExc_TypeError, "YieldSite: rule must be a Rule");
        return NULL;
    }
    YieldSite *self = (YieldSite *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->site = Py_NewRef(site);
    self->rule = Py_NewRef(rule);
    self->check = Py_NewRef(PyTuple_GET_ITEM(rule, 0));
    self->form = Py_NewRef(form);
    self->slow = Py_NewRef(slow);
    self->name = Py_NewRef(name);
    self->vectorcall = (vectorcallfunc)YieldSite_call;
    return (PyObject *)self;
}

static PyMemberDef YieldSite_members[] = {
    {"__qualname__", T_OBJECT, offsetof(YieldSite, name), READONLY, NULL},
    {"__name__", T_OBJECT, offsetof(YieldSite, name), READONLY, NULL},
    {"__wrapped__", T_OBJECT, offsetof(YieldSite, slow), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject YieldSiteType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "coroutine._speedups.YieldSite",
    .tp_basicsize = sizeof(YieldSite),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_HAVE_GC,
    .tp_vectorcall_offset = offsetof(YieldSite, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = YieldSite_new,
    .tp_dealloc = (destructor)YieldSite_dealloc,
    .tp_traverse = (traverseproc)YieldSite_traverse,
    .tp_clear = (inquiry)YieldSite_clear,
    .tp_repr = (reprfunc)YieldSite_repr,
    .tp_members = YieldSite_members,
    .tp_doc = "The compiled yield function of one `Yield[R, S]` site (see _yield.make_yield).",
};
