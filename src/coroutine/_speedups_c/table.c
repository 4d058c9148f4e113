/* The Yield table: a dict whose subscription first tries an identity cache, so that
 * `Yield[int, int]` written at every yield costs no tuple hash and no dict lookup. */

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
    {"_forget", (PyCFunction)YieldTable_forget, METH_NOARGS, NULL},
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
