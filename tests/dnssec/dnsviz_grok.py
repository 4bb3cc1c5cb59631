# dnsviz 0.9.4 (Debian 12) looks for pygraphviz.release, which pygraphviz 1.7
# no longer has: provide it, then run `dnsviz grok` unchanged.
import sys, types, runpy
import pygraphviz
rel = types.ModuleType("pygraphviz.release")
rel.version = pygraphviz.__version__
sys.modules["pygraphviz.release"] = rel
pygraphviz.release = rel
sys.argv = ["dnsviz", "grok"] + sys.argv[1:]
runpy.run_path("/usr/bin/dnsviz", run_name="__main__")
