#!/usr/bin/python3
"""Run the code blocks of a Markdown page, so that the page cannot drift
from the library.

    run_doc_blocks.py PAGE.md --include DIR --libdir DIR [--cc CC]

- every ```c block is a complete program: it is compiled with -std=c11
  -Wall -Werror against the headers in --include and the libmetagrad in
  --libdir, and run; it must exit 0;
- the ```python blocks of the page are one script, in order (a session that
  later blocks continue); it is run with this interpreter and must exit 0;
  `import metagrad` finds the package through PYTHONPATH / METAGRAD_LIBRARY
  or an installed package, as the caller's environment says;
- ```sh blocks are commands for a person (installing, building); they are
  not run here (tests/install checks the install routes).

A page with no runnable block is an error: the test must test something.
Exits 0 when every block passed, 1 otherwise, with the failing block's
first line and output.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.S | re.M)


def blocks(text):
    """(language, code, line number) of every fenced block."""
    for m in FENCE.finditer(text):
        yield m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1


def run(cmd, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    return p.returncode, p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("page")
    ap.add_argument("--include", required=True)
    ap.add_argument("--libdir", required=True)
    ap.add_argument("--cc", default="cc")
    a = ap.parse_args()

    text = open(a.page, encoding="utf-8").read()
    name = os.path.basename(a.page)
    failures, ran = 0, 0
    python = []
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = a.libdir + (":" + env["LD_LIBRARY_PATH"]
                                         if env.get("LD_LIBRARY_PATH") else "")
    with tempfile.TemporaryDirectory() as tmp:
        for lang, code, line in blocks(text):
            if lang == "c":
                ran += 1
                src = os.path.join(tmp, "block%d.c" % line)
                exe = src[:-2]
                with open(src, "w") as f:
                    f.write(code)
                rc, out = run([a.cc, "-std=c11", "-Wall", "-Werror", "-I", a.include, src,
                               "-o", exe, "-L", a.libdir, "-lmetagrad", "-lm"])
                if rc == 0:
                    rc, out = run([exe], env=env, cwd=tmp)
                status = "ok" if rc == 0 else "FAILED (exit %d)" % rc
                print("%s:%d: C block: %s" % (name, line, status))
                print(out, end="")
                failures += rc != 0
            elif lang == "python":
                python.append((line, code))
        if python:
            ran += 1
            script = os.path.join(tmp, "blocks.py")
            with open(script, "w") as f:
                for line, code in python:
                    f.write("# %s:%d\n%s\n" % (name, line, code))
            rc, out = run([sys.executable, script], env=env, cwd=tmp)
            status = "ok" if rc == 0 else "FAILED (exit %d)" % rc
            print("%s: Python blocks (lines %s): %s"
                  % (name, ", ".join(str(line) for line, _ in python), status))
            print(out, end="")
            failures += rc != 0
    if ran == 0:
        print("%s: no C or Python block to run" % name)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
