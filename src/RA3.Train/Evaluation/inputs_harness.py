# inputs_harness.py - appended (by ra3's TestPrograms) to programs of EvalPlus problems, whose tests
# are argument lists for the entry point. _ra3_expect runs the canonical solution on them and
# prints the outputs (pickled, base64); _ra3_check runs a candidate on them and compares with
# those outputs as the EvalPlus harness does: exactly, or for floats within atol (1e-6 when the
# problem gives 0) plus a relative 1e-7; find_zero is checked by the polynomial's value instead.
import base64 as _ra3_b64
import copy as _ra3_copy
import json as _ra3_json
import pickle as _ra3_pickle
import sys as _ra3_sys


def _ra3_floats(x):
    return isinstance(x, float) or (isinstance(x, (list, tuple)) and len(x) > 0 and all(isinstance(v, float) for v in x))


def _ra3_number_close(out, exp, atol):
    try:
        return abs(out - exp) <= atol + 1e-7 * abs(exp)
    except TypeError:
        return out == exp


def _ra3_close(out, exp, atol):
    try:
        if out == exp:
            return True
    except Exception:
        pass
    if atol == 0 and _ra3_floats(exp):
        atol = 1e-6
    if atol == 0 or type(out) is not type(exp):
        return False
    if isinstance(exp, (list, tuple)):
        return len(out) == len(exp) and all(_ra3_number_close(o, e, atol) for o, e in zip(out, exp))
    return _ra3_number_close(out, exp, atol)


def _ra3_expect(entry, *blobs):
    fn = globals()[entry]
    for name, blob in zip(("base", "plus"), blobs):
        outputs = [fn(*_ra3_copy.deepcopy(args)) for args in _ra3_json.loads(_ra3_b64.b64decode(blob))]
        _ra3_sys.stdout.write("\n@@ra3-expected " + name + " " + _ra3_b64.b64encode(_ra3_pickle.dumps(outputs, protocol=4)).decode() + "\n")


def _ra3_check(entry, inputs_blob, expected_blob, atol):
    fn = globals()[entry]
    inputs = _ra3_json.loads(_ra3_b64.b64decode(inputs_blob))
    expected = _ra3_pickle.loads(_ra3_b64.b64decode(expected_blob))
    for i, (args, exp) in enumerate(zip(inputs, expected)):
        out = fn(*_ra3_copy.deepcopy(args))
        if entry == "find_zero":
            ok = abs(globals()["poly"](*args, out)) <= max(atol, 1e-6)
        else:
            ok = _ra3_close(out, exp, atol)
        if not ok:
            raise AssertionError("input %d: expected %.200r, got %.200r" % (i, exp, out))
