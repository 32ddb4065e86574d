"""Replace a file so that a reader sees either the old one or the new one.

The content goes to a temporary file in the target's directory, is flushed to
disk and is then renamed over the target; a failure at any point, Ctrl-C
included, leaves the old file as it was and no temporary file behind.
"""

import errno
import os
import tempfile


def write_atomically(path, write, action="write"):
    """Write a file through a temporary file beside it, then rename it into place.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write. A symbolic link is followed: the file it names is
        replaced and the link is kept. The directory must exist.
    write : callable
        Called once with a binary file object open for writing; it writes the
        whole content.
    action : str, optional
        What the caller does, for error messages ("cannot {action} {path!r}").

    Raises
    ------
    OSError
        When ``path`` exists and is not a regular file, or the file cannot be
        written; the message names ``path``.

    Notes
    -----
    A file that is replaced keeps its permission bits; a new file gets those
    any other new file would get under the current umask.
    """
    path = os.fspath(path)
    # Never rename over something that is not a regular file (a device, a
    # FIFO, a directory).
    target = os.path.realpath(path)
    if os.path.lexists(target) and not os.path.isfile(target):
        raise OSError(
            errno.EEXIST,
            f"cannot {action} {path!r}: it exists and is not a regular file",
        )
    if os.path.exists(target):
        mode = os.stat(target).st_mode & 0o7777
    else:
        mode = 0o666 & ~_current_umask()
    directory = os.path.dirname(target)
    try:
        fd, tmp_path = tempfile.mkstemp(
            dir=directory, prefix=f".{os.path.basename(target)}.", suffix=".tmp"
        )
    except OSError as error:
        raise OSError(
            error.errno, f"cannot {action} {path!r}: {error.strerror}"
        ) from error
    try:
        with os.fdopen(fd, "wb") as handle:
            # mkstemp makes the file readable by its owner only.
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), mode)
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, target)
    except BaseException as error:
        # Also on KeyboardInterrupt: no half-written temporary file stays behind.
        try:
            os.unlink(tmp_path)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise OSError(
                error.errno, f"cannot {action} {path!r}: {error.strerror or error}"
            ) from error
        raise
    _sync_directory(directory)


def _current_umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _sync_directory(directory):
    """Make the rename itself durable, where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
