/*
 * ipsecpcap._walk: the classic-pcap record walk, and the pcapng walk over
 * Enhanced Packet Blocks, in C.
 *
 * Why this exists (issue 8, measured with cProfile and bench/run.py): the walk
 * over record headers is the one loop of the reader that cannot be
 * vectorised -- where a record starts depends on the length of the one
 * before -- and in Python it cost 0.9 s of the 1M-packet benchmark capture,
 * as much as the whole rest of the fast path's packet handling.  This module
 * does only that loop; everything else stays in Python and numpy.
 *
 * The pure-Python version is ipsecpcap.reader._Pcap._walk_py; both must give
 * the same arrays (tests/ipsecpcap/test_walk.py runs both on every fixture).
 *
 * walk(buf, pos, header_size, big_endian, divisor, offs, caps, origs, ts)
 *     buf          a bytes-like object: the read buffer
 *     pos          where the first record header starts
 *     header_size  16, or 24 for the "modified" (Kuznetzov) format
 *     big_endian   the file's byte order (1: big-endian)
 *     divisor      1e6 (microseconds) or 1e9 (nanoseconds)
 *     offs, caps, origs   writable int64 buffers (numpy arrays), at least
 *                  (len(buf) - pos) // header_size + 1 entries each
 *     ts           writable float64 buffer, the same size
 *   Records that lie wholly in buf[pos:] are written out: the offset of the
 *   packet bytes (after the header), the captured and the original length,
 *   and the timestamp sec + sub / divisor (the same IEEE double operations
 *   as numpy does them, so the same bits).  Returns (count, first unread
 *   position).  No checks beyond the buffer's bounds: the caller's buffer is
 *   never larger than MAX_RECORD, so an impossible length simply does not
 *   fit and stops the walk, as in Python.
 *
 * Draft: https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html
 * (section 5: timestamp seconds, sub-second part, captured length, original
 * length, each 32 bits in the file's byte order).
 *
 * walk_epb(buf, pos, big_endian, n_ifaces, offs, caps, origs, stamps, ifids)
 *   The same loop for pcapng (issue 8 again: Wireshark and dumpcap write
 *   pcapng, and its walk in Python took 0.87 s of CPU per million packets
 *   against 0.36 s for a classic pcap read in C).  It takes the common case
 *   only, a run of Enhanced Packet Blocks (draft-ietf-opsawg-pcapng section
 *   4.3) that are well formed -- type 6, an interface already described
 *   (id < n_ifaces), room for the captured length, a total length that is a
 *   multiple of 4, lies wholly in the buffer and is repeated at the block's
 *   end -- exactly the blocks the Python walk's own inner loop
 *   (ipsecpcap.reader._Pcapng.walk) takes, and stops at the first other
 *   block, which Python handles.  For each it writes the offset of the packet
 *   bytes (pos + 28), the captured and original lengths, the 64-bit timestamp
 *   (high << 32 | low, in the interface's units: the caller divides, so that
 *   the result is Python's own correctly rounded division) and the interface
 *   id.  The five out buffers (int64, the stamps uint64) need room for
 *   (len(buf) - pos) // 32 + 1 records (an EPB has at least 32 bytes).
 *   Returns (count, first unread position).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t
load32(const unsigned char *p, int big)
{
    if (big)
        return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | p[0];
}

static int
get_out(PyObject *obj, Py_buffer *view, Py_ssize_t itemsize, Py_ssize_t need, const char *what)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    if (view->len < need * itemsize) {
        PyErr_Format(PyExc_ValueError, "walk: %s has room for %zd records, %zd needed",
                     what, view->len / itemsize, need);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* The n out buffers (8-byte items), each with room for `need`; on failure none is held. */
static int
get_outs(PyObject **objs, Py_buffer *views, int n, Py_ssize_t need, const char *const *names)
{
    for (int i = 0; i < n; i++) {
        if (get_out(objs[i], &views[i], 8, need, names[i]) < 0) {
            while (--i >= 0)
                PyBuffer_Release(&views[i]);
            return -1;
        }
    }
    return 0;
}

static void
release(Py_buffer *in, Py_buffer *views, int n)
{
    for (int i = 0; i < n; i++)
        PyBuffer_Release(&views[i]);
    PyBuffer_Release(in);
}

static PyObject *
walk(PyObject *self, PyObject *args)
{
    Py_buffer in, o[4];
    Py_ssize_t pos, hs;
    int big;
    double divisor;
    PyObject *obj[4];
    static const char *const names[4] = {"offs", "caps", "origs", "ts"};

    if (!PyArg_ParseTuple(args, "y*nnpdOOOO", &in, &pos, &hs, &big, &divisor, &obj[0], &obj[1], &obj[2],
                          &obj[3]))
        return NULL;
    if (hs < 16 || pos < 0) {
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_ValueError, "walk: header_size must be >= 16 and pos >= 0");
        return NULL;
    }
    Py_ssize_t len = in.len;
    Py_ssize_t need = (pos < len ? (len - pos) / hs : 0) + 1;
    if (get_outs(obj, o, 4, need, names) < 0) {
        PyBuffer_Release(&in);
        return NULL;
    }

    const unsigned char *b = (const unsigned char *)in.buf;
    int64_t *offs = (int64_t *)o[0].buf, *caps = (int64_t *)o[1].buf, *origs = (int64_t *)o[2].buf;
    double *ts = (double *)o[3].buf;
    Py_ssize_t n = 0;

    Py_BEGIN_ALLOW_THREADS
    while (pos + hs <= len) {
        const unsigned char *h = b + pos;
        uint32_t caplen = load32(h + 8, big);
        if ((Py_ssize_t)caplen > len - pos - hs)
            break;  /* the packet bytes do not fit: the caller completes the record */
        uint32_t sec = load32(h, big), sub = load32(h + 4, big);
        offs[n] = pos + hs;
        caps[n] = caplen;
        origs[n] = load32(h + 12, big);
        ts[n] = (double)sec + (double)sub / divisor;
        n++;
        pos += hs + (Py_ssize_t)caplen;
    }
    Py_END_ALLOW_THREADS

    release(&in, o, 4);
    return Py_BuildValue("nn", n, pos);
}

static PyObject *
walk_epb(PyObject *self, PyObject *args)
{
    Py_buffer in, o[5];
    Py_ssize_t pos, nif;
    int big;
    PyObject *obj[5];
    static const char *const names[5] = {"offs", "caps", "origs", "stamps", "ifids"};

    if (!PyArg_ParseTuple(args, "y*npnOOOOO", &in, &pos, &big, &nif, &obj[0], &obj[1], &obj[2], &obj[3],
                          &obj[4]))
        return NULL;
    if (pos < 0 || nif < 0) {
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_ValueError, "walk_epb: pos and n_ifaces must be >= 0");
        return NULL;
    }
    Py_ssize_t len = in.len;
    Py_ssize_t need = (pos < len ? (len - pos) / 32 : 0) + 1;
    if (get_outs(obj, o, 5, need, names) < 0) {
        PyBuffer_Release(&in);
        return NULL;
    }
    const unsigned char *b = (const unsigned char *)in.buf;
    int64_t *offs = (int64_t *)o[0].buf, *caps = (int64_t *)o[1].buf, *origs = (int64_t *)o[2].buf;
    uint64_t *stamps = (uint64_t *)o[3].buf;
    int64_t *ifids = (int64_t *)o[4].buf;
    Py_ssize_t n = 0;

    Py_BEGIN_ALLOW_THREADS
    while (len - pos >= 28) {
        const unsigned char *h = b + pos;
        /* type, total length, interface id, timestamp high, low, captured length, original length */
        uint32_t btype = load32(h, big), blen = load32(h + 4, big), ifid = load32(h + 8, big);
        uint32_t caplen = load32(h + 20, big);
        if (btype != 6 || (Py_ssize_t)ifid >= nif || (int64_t)caplen > (int64_t)blen - 32
            || (Py_ssize_t)blen > len - pos || (blen & 3) || load32(h + blen - 4, big) != blen)
            break;
        offs[n] = pos + 28;
        caps[n] = caplen;
        origs[n] = load32(h + 24, big);
        stamps[n] = ((uint64_t)load32(h + 12, big) << 32) | load32(h + 16, big);
        ifids[n] = ifid;
        n++;
        pos += blen;
    }
    Py_END_ALLOW_THREADS

    release(&in, o, 5);
    return Py_BuildValue("nn", n, pos);
}

/*
 * heads(buf, offs, width, out): the first `width` bytes of every record, one
 * row each, into the writable uint8 buffer `out` (len(offs) * width bytes;
 * offs: int64 record offsets).  Bytes past the end of the buffer are zero.
 * The vectorised classifier reads its fixed offsets from these rows; numpy
 * needs an index array of 8 bytes per byte gathered to do the same.
 */
static PyObject *
heads(PyObject *self, PyObject *args)
{
    Py_buffer in, o_offs, o_out;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "y*y*nw*", &in, &o_offs, &width, &o_out))
        return NULL;
    Py_ssize_t n = o_offs.len / 8;
    if (width <= 0 || o_out.len < n * width) {
        PyBuffer_Release(&o_out);
        PyBuffer_Release(&o_offs);
        PyBuffer_Release(&in);
        PyErr_SetString(PyExc_ValueError, "heads: out must hold len(offs) * width bytes");
        return NULL;
    }
    const unsigned char *b = (const unsigned char *)in.buf;
    const int64_t *offs = (const int64_t *)o_offs.buf;
    unsigned char *out = (unsigned char *)o_out.buf;
    Py_ssize_t len = in.len;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++, out += width) {
        int64_t o = offs[i];
        Py_ssize_t have = (o >= 0 && o < len) ? len - (Py_ssize_t)o : 0;
        if (have >= width) {
            memcpy(out, b + o, width);
        } else {
            if (have > 0)
                memcpy(out, b + o, have);
            memset(out + have, 0, width - have);
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&o_out);
    PyBuffer_Release(&o_offs);
    PyBuffer_Release(&in);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"heads", heads, METH_VARARGS, "heads(buf, offs, width, out): the first width bytes of each record into out"},
    {"walk", walk, METH_VARARGS, "walk(buf, pos, header_size, big_endian, divisor, offs, caps, origs, ts)"
                                 " -> (count, next position): the classic-pcap record walk"},
    {"walk_epb", walk_epb, METH_VARARGS, "walk_epb(buf, pos, big_endian, n_ifaces, offs, caps, origs, stamps, ifids)"
                                         " -> (count, next position): a run of well-formed pcapng EPBs"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_walk", "The capture record walks in C (see ipsecpcap/_walk.c).", -1, methods,
};

PyMODINIT_FUNC
PyInit__walk(void)
{
    return PyModule_Create(&module);
}
