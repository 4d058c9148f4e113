/* The type tables: `Yield`, a dict whose subscription first tries an identity cache, so that
 * `Yield[int, int]` written at every yield costs no tuple hash and no dict lookup; and
 * `New[R, S]` and `NewWithReturn[R, S]`, whose `__class_getitem__` is the same identity cache
 * in front of the Python one (`_new._factory`). */

#include "speedups.h"

#define TABLE_CACHE 8

typedef struct {
    PyDictObject dict;
    PyObject *keys[TABLE_CACHE][2]; /* (R, S) by identity */
    PyObject *fns[TABLE_CACHE];
    int next;
} YieldTable;

static PyObject *
YieldTable_subscript(YieldTable *self, PyObject *item)
{
    if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2) {
        PyObject *r = PyTuple_GET_ITEM(item, 0), *s = PyTuple_GET_ITEM(item, 1);
        for (int i = 0; i < TABLE_CACHE; i++)
            if (self->keys[i][0] == r && self->keys[i][1] == s && self->fns[i] != NULL)
                return Py_NewRef(self->fns[i]);
    }
    PyObject *fn = PyDict_Type.tp_as_mapping->mp_subscript((PyObject *)self, item);
    if (fn != NULL && PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2) {
        int i = self->next;
        self->next = (i + 1) % TABLE_CACHE;
        Py_XSETREF(self->keys[i][0], Py_NewRef(PyTuple_GET_ITEM(item, 0)));
        Py_XSETREF(self->keys[i][1], Py_NewRef(PyTuple_GET_ITEM(item, 1)));
        Py_XSETREF(self->fns[i], Py_NewRef(fn));
    }
    return fn;
}

static int
YieldTable_traverse(YieldTable *self, visitproc visit, void *arg)
{
    for (int i = 0; i < TABLE_CACHE; i++) {
        Py_VISIT(self->keys[i][0]);
        Py_VISIT(self->keys[i][1]);
        Py_VISIT(self->fns[i]);
    }
    return PyDict_Type.tp_traverse((PyObject *)self, visit, arg);
}

static int
YieldTable_clear(YieldTable *self)
{
    for (int i = 0; i < TABLE_CACHE; i++) {
        Py_CLEAR(self->keys[i][0]);
        Py_CLEAR(self->keys[i][1]);
        Py_CLEAR(self->fns[i]);
    }
    return PyDict_Type.tp_clear((PyObject *)self);
}

static PyObject *
YieldTable_forget(YieldTable *self, PyObject *unused) /* empty the identity cache */
{
    for (int i = 0; i < TABLE_CACHE; i++) {
        Py_CLEAR(self->keys[i][0]);
        Py_CLEAR(self->keys[i][1]);
        Py_CLEAR(self->fns[i]);
    }
    Py_RETURN_NONE;
}

static void
YieldTable_dealloc(YieldTable *self)
{
    PyObject_GC_UnTrack(self);
    YieldTable_forget(self, NULL);
    PyDict_Type.tp_dealloc((PyObject *)self);
}

static PyMappingMethods YieldTable_mapping = {
    .mp_subscript = (binaryfunc)YieldTable_subscript,
};

static PyMethodDef YieldTable_methods[] = {
    {"_forget", (PyCFunction)YieldTable_forget, METH_NOARGS,
     "_forget($self, /)\n--\n\nEmpty the identity cache (the dictionary keeps its entries)."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject YieldTableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "coroutine._speedups.YieldTable",
    .tp_basicsize = sizeof(YieldTable),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_as_mapping = &YieldTable_mapping,
    .tp_traverse = (traverseproc)YieldTable_traverse,
    .tp_clear = (inquiry)YieldTable_clear,
    .tp_dealloc = (destructor)YieldTable_dealloc,
    .tp_methods = YieldTable_methods,
    .tp_doc = "A dict with an identity cache in front of its subscription (`Yield`).",
};

/* The subscription of `New` and `NewWithReturn`, compiled: the `__getitem__` of their
 * metaclass (`_new._Subscripted`), so `New[int, Any]` written at every creation reaches it
 * straight from the subscription (no attribute lookup on the class, no bound method: it is
 * a method descriptor) and finds the factory by the identity of the class, `int` and `Any`.
 * Anything else, and every first sight, goes to the Python function `fallback(cls, item)`,
 * whose answers are cached for good (`_new._factory` caches them too: the same object comes
 * back either way). */
typedef struct {
    PyObject_HEAD
    PyObject *fallback;
    PyObject *keys[TABLE_CACHE][3];
    PyObject *found[TABLE_CACHE];
    int next;
    vectorcallfunc vectorcall;
} Subscript;

static PyObject *
Subscript_call(Subscript *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames != NULL)
        return PyObject_Vectorcall(self->fallback, args, nargsf, kwnames); /* its TypeError */
    PyObject *cls = args[0], *item = args[1];
    int pair = PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2;
    if (pair) {
        PyObject *r = PyTuple_GET_ITEM(item, 0), *s = PyTuple_GET_ITEM(item, 1);
        for (int i = 0; i < TABLE_CACHE; i++)
            if (self->keys[i][0] == cls && self->keys[i][1] == r && self->keys[i][2] == s
                && self->found[i] != NULL)
                return Py_NewRef(self->found[i]);
    }
    PyObject *made = PyObject_Vectorcall(self->fallback, args, nargsf, NULL);
    if (made != NULL && pair) {
        int i = self->next;
        self->next = (i + 1) % TABLE_CACHE;
        Py_XSETREF(self->keys[i][0], Py_NewRef(cls));
        Py_XSETREF(self->keys[i][1], Py_NewRef(PyTuple_GET_ITEM(item, 0)));
        Py_XSETREF(self->keys[i][2], Py_NewRef(PyTuple_GET_ITEM(item, 1)));
        Py_XSETREF(self->found[i], Py_NewRef(made));
    }
    return made;
}

/* As a method: `New.__getitem__` is bound to the class, as a function would be. */
static PyObject *
Subscript_get(PyObject *self, PyObject *obj, PyObject *type)
{
    return obj == NULL || obj == Py_None ? Py_NewRef(self) : PyMethod_New(self, obj);
}

static int
Subscript_traverse(Subscript *self, visitproc visit, void *arg)
{
    Py_VISIT(self->fallback);
    for (int i = 0; i < TABLE_CACHE; i++) {
        Py_VISIT(self->keys[i][0]);
        Py_VISIT(self->keys[i][1]);
        Py_VISIT(self->keys[i][2]);
        Py_VISIT(self->found[i]);
    }
    return 0;
}

static int
Subscript_clear(Subscript *self)
{
    Py_CLEAR(self->fallback);
    for (int i = 0; i < TABLE_CACHE; i++) {
        Py_CLEAR(self->keys[i][0]);
        Py_CLEAR(self->keys[i][1]);
        Py_CLEAR(self->keys[i][2]);
        Py_CLEAR(self->found[i]);
    }
    return 0;
}

static void
Subscript_dealloc(Subscript *self)
{
    PyObject_GC_UnTrack(self);
    Subscript_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Subscript_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *fallback;
    if (!PyArg_ParseTuple(args, "O:Subscript", &fallback))
        return NULL;
    Subscript *self = (Subscript *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->fallback = Py_NewRef(fallback);
    self->vectorcall = (vectorcallfunc)Subscript_call;
    return (PyObject *)self;
}

static PyMemberDef Subscript_members[] = {
    {"__wrapped__", T_OBJECT, offsetof(Subscript, fallback), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

PyTypeObject SubscriptType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "coroutine._speedups.Subscript",
    .tp_basicsize = sizeof(Subscript),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_HAVE_GC
                | Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_vectorcall_offset = offsetof(Subscript, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = Subscript_get,
    .tp_new = Subscript_new,
    .tp_dealloc = (destructor)Subscript_dealloc,
    .tp_traverse = (traverseproc)Subscript_traverse,
    .tp_clear = (inquiry)Subscript_clear,
    .tp_members = Subscript_members,
    .tp_doc = "Subscript(fallback)\n--\n\n"
              "A metaclass's __getitem__ with an identity cache in front of `fallback(cls, "
              "item)` (New[R, S]).",
};
