"""The harness side of one sandboxed run (embedded in ra3; written to /harness/driver.py).

Runs the program (argv[2]: /box/program.py inside the sandbox) as __main__ and reports how it ended on stdout as the last line:
    <nonce> {"outcome": ..., "type": ..., "message": ...}
The nonce (argv[1], removed before the program runs) tells that line from anything the program
prints, so a program that exits early (os._exit(0), sys.exit(0)) or prints a fake report is not
taken for a pass. It is a guard against accidents and naive tricks, not against code that searches
its own process for the nonce: the sandbox around this process is what protects the machine.
"""
import json
import os
import sys

_nonce, _program = sys.argv[1], sys.argv[2]
del sys.argv[1:]
_write, _dumps, _flush_out, _flush_err = os.write, json.dumps, sys.stdout.flush, sys.stderr.flush


def _report(outcome, kind="", message=""):
    try:
        _flush_out()
        _flush_err()
    except BaseException:
        pass
    line = "\n" + _nonce + " " + _dumps({"outcome": outcome, "type": kind, "message": message[:1000]}) + "\n"
    _write(1, line.encode("utf-8", "replace"))


def _main():
    with open(_program, encoding="utf-8") as f:
        source = f.read()
    scope = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(compile(source, "program.py", "exec"), scope)
    except AssertionError as e:
        _report("failed", "AssertionError", str(e))
    except MemoryError:
        _report("memory", "MemoryError")
    except SystemExit as e:
        _report("error", "SystemExit", "the program exited before its tests finished (code %r)" % (e.code,))
    except BaseException as e:
        _report("error", type(e).__name__, str(e))
    else:
        _report("passed")


_main()
