"""Build hook for the one C extension (the AMI parser's hot loop); all metadata is in pyproject.toml.

The extension is required: a machine without a C compiler and the Python headers fails the
install loudly (deploy/local/install-deps.sh installs gcc and python3-dev). At run time
SWITCHBOARD_NO_EXTENSIONS=1 selects the pure-Python parser instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "switchboard.ami._speedups",
            ["switchboard/ami/_speedups.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
        )
    ],
)
