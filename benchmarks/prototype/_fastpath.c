/* A prototype, not shipped: the yield and Run hot paths of coroutine in C, to measure what an
 * optional compiled fast path would gain over the pure-Python runtime. It reads and writes the
 * same Context slots as src/coroutine/_context.py and falls back to the Python code for every
 * case but the common one (a volatile, unstopped coroutine yielding its own types). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stddef.h>
#include <structmember.h>

static PyObject *s_state, *s_sig, *s_stopping, *s_durable, *s_sent, *s_driver, *s_switch,
    *s_recv;
static PyObject *SUSPENDED, *RUNNING, *NOTHING, *CURRENT;

/* Offsets of Context's slots, read from its member descriptors at setup: a compiled runtime
 * would keep this state in a C struct; reading the slots directly is the same cost. */
static Py_ssize_t o_state, o_sig, o_stopping, o_durable, o_sent, o_driver, o_recv;
#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

static int
slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *out)
{
    PyObject *descr = PyDict_GetItemString(type->tp_dict, name);
    if (!descr || !PyObject_TypeCheck(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "%s is not a slot", name);
        return -1;
    }
    *out = ((PyMemberDescrObject *)descr)->d_member->offset;
    return 0;
}

static void
set_slot(PyObject *obj, Py_ssize_t off, PyObject *value)
{
    PyObject *old = SLOT(obj, off);
    Py_INCREF(value);
    SLOT(obj, off) = value;
    Py_XDECREF(old);
}

typedef struct {
    PyObject_HEAD
    PyObject *site;     /* the site's Signature */
    PyObject *cls;      /* isinstance() target, or None */
    PyObject *slow;     /* the Python yield function, for every other case */
    vectorcallfunc vectorcall;
} YieldSite;

static PyObject *
slow_path(YieldSite *self, PyObject *value)
{
    return PyObject_CallOneArg(self->slow, value);
}

static PyObject *
YieldSite_call(YieldSite *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 1 || kwnames) {
        PyErr_SetString(PyExc_TypeError, "Yield takes one positional argument");
        return NULL;
    }
    PyObject *value = args[0], *ctx = NULL;
    if (PyContextVar_Get(CURRENT, Py_None, &ctx) < 0)
        return NULL;
    int fast = ctx != Py_None && SLOT(ctx, o_sig) == self->site
               && SLOT(ctx, o_stopping) == Py_False && SLOT(ctx, o_durable) == Py_None;
    if (fast && self->cls != Py_None) {
        int ok = PyObject_IsInstance(value, self->cls);
        if (ok < 0) { Py_DECREF(ctx); return NULL; }
        fast = ok;
    }
    if (!fast) {
        Py_DECREF(ctx);
        return slow_path(self, value);
    }
    PyObject *driver = SLOT(ctx, o_driver);
    Py_INCREF(driver);
    set_slot(ctx, o_state, SUSPENDED);
    set_slot(ctx, o_sent, NOTHING);
    Py_DECREF(ctx);
    PyObject *sent = PyObject_CallMethodOneArg(driver, s_switch, value);
    Py_DECREF(driver);
    if (sent == NOTHING) {  /* rare: the prototype does not apply the None rule */
        Py_DECREF(sent);
        Py_RETURN_NONE;
    }
    return sent;
}

static void
YieldSite_dealloc(YieldSite *self)
{
    Py_XDECREF(self->site); Py_XDECREF(self->cls); Py_XDECREF(self->slow);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject YieldSiteType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_fastpath.YieldSite",
    .tp_basicsize = sizeof(YieldSite),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(YieldSite, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_dealloc = (destructor)YieldSite_dealloc,
};

static PyObject *
make_yield(PyObject *mod, PyObject *args)
{
    PyObject *site, *cls, *slow;
    if (!PyArg_ParseTuple(args, "OOO", &site, &cls, &slow))
        return NULL;
    YieldSite *self = PyObject_New(YieldSite, &YieldSiteType);
    if (!self) return NULL;
    Py_INCREF(site); Py_INCREF(cls); Py_INCREF(slow);
    self->site = site; self->cls = cls; self->slow = slow;
    self->vectorcall = (vectorcallfunc)YieldSite_call;
    return (PyObject *)self;
}

/* run_loop(ctx, worker, fn, cls_s, driver): Run's loop while the fast case holds.
 * Returns (True, None) when the coroutine yielded but the fast case no longer holds,
 * (False, out) when the body ended (the caller finishes with Coroutine._ended(out)). */
static PyObject *
run_loop(PyObject *mod, PyObject *args)
{
    PyObject *ctx, *worker, *fn, *cls, *driver;
    if (!PyArg_ParseTuple(args, "OOOOO", &ctx, &worker, &fn, &cls, &driver))
        return NULL;
    PyObject *switch_ = PyObject_GetAttr(worker, s_switch);
    if (!switch_) return NULL;
    for (;;) {
        PyObject *sent = PyObject_CallOneArg(fn, SLOT(ctx, o_recv));
        if (!sent) { Py_DECREF(switch_); return NULL; }
        int fast = SLOT(ctx, o_state) == SUSPENDED && SLOT(ctx, o_stopping) == Py_False;
        if (fast && cls != Py_None) {
            int ok = PyObject_IsInstance(sent, cls);
            if (ok < 0) { Py_DECREF(sent); Py_DECREF(switch_); return NULL; }
            fast = ok;
        }
        if (!fast) {
            Py_DECREF(sent); Py_DECREF(switch_);
            return Py_BuildValue("(OO)", Py_True, Py_None);
        }
        set_slot(ctx, o_driver, driver);
        set_slot(ctx, o_state, RUNNING);
        PyObject *out = PyObject_CallOneArg(switch_, sent);
        Py_DECREF(sent);
        if (!out) { Py_DECREF(switch_); return NULL; }
        if (SLOT(ctx, o_state) != SUSPENDED) {
            PyObject *r = Py_BuildValue("(OO)", Py_False, out);
            Py_DECREF(out); Py_DECREF(switch_);
            return r;
        }
        set_slot(ctx, o_recv, out);
        Py_DECREF(out);
    }
}

static PyObject *
setup(PyObject *mod, PyObject *args)
{
    PyObject *ctx_type;
    if (!PyArg_ParseTuple(args, "OOOOO", &SUSPENDED, &RUNNING, &NOTHING, &CURRENT, &ctx_type))
        return NULL;
    PyTypeObject *t = (PyTypeObject *)ctx_type;
    if (slot_offset(t, "_state", &o_state) < 0 || slot_offset(t, "_sig", &o_sig) < 0 ||
        slot_offset(t, "_stopping", &o_stopping) < 0 || slot_offset(t, "_durable", &o_durable) < 0 ||
        slot_offset(t, "_sent", &o_sent) < 0 || slot_offset(t, "_driver", &o_driver) < 0 ||
        slot_offset(t, "_recv", &o_recv) < 0)
        return NULL;
    Py_INCREF(SUSPENDED); Py_INCREF(RUNNING); Py_INCREF(NOTHING); Py_INCREF(CURRENT);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"make_yield", make_yield, METH_VARARGS, NULL},
    {"run_loop", run_loop, METH_VARARGS, NULL},
    {"setup", setup, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_fastpath", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    if (PyType_Ready(&YieldSiteType) < 0) return NULL;
    s_state = PyUnicode_InternFromString("_state");
    s_sig = PyUnicode_InternFromString("_sig");
    s_stopping = PyUnicode_InternFromString("_stopping");
    s_durable = PyUnicode_InternFromString("_durable");
    s_sent = PyUnicode_InternFromString("_sent");
    s_driver = PyUnicode_InternFromString("_driver");
    s_switch = PyUnicode_InternFromString("switch");
    s_recv = PyUnicode_InternFromString("_recv");
    return PyModule_Create(&moduledef);
}
