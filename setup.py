"""Builds the one optional C module, ipsecpcap._walk (the classic-pcap record walk).

Everything else is in pyproject.toml.  The module is optional: where no C
compiler or Python headers are found, the build goes on without it and the
reader uses its pure-Python walk (same results, slower; see
ipsecpcap/_walk.c for why the module exists).
"""
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class OptionalBuildExt(build_ext):
    """build_ext that warns instead of failing: the C walk is a speed-up, not a requirement."""

    def run(self):
        try:
            super().run()
        except Exception as e:  # no compiler at all (distutils raises its own error types)
            self.warn(f"ipsecpcap._walk not built ({e}); the pure-Python walk is used")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            self.warn(f"ipsecpcap._walk not built ({e}); the pure-Python walk is used")


setup(
    ext_modules=[Extension("ipsecpcap._walk", ["ipsecpcap/_walk.c"],
                           extra_compile_args=["-O2", "-ffp-contract=off"], optional=True)],
    cmdclass={"build_ext": OptionalBuildExt},
)
