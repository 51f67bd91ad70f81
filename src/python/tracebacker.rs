//! The text `py-tracebacker` serves (uWSGI's `plugins/python/tracebacker.c`): the Python
//! stack of each thread, one line per frame, in uWSGI's format. It takes the GIL, so it
//! waits for a thread that holds it in C code, as uWSGI's does. The socket is the worker's
//! (`worker/tracebacker.rs`); this file does no I/O.

use pyo3::prelude::*;

/// The stacks of every thread that runs Python code, as uWSGI's tracebacker writes them.
const DUMP: &std::ffi::CStr = c"
def dump():
    import sys, threading, traceback
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    out = ['*** uWSGI Python tracebacker output ***\\n\\n']
    for ident, frame in sys._current_frames().items():
        name = names.get(ident, '<UnnamedPythonThread>')
        for entry in traceback.extract_stack(frame):
            out.append('thread_id = %s filename = %s lineno = %d function = %s line = %s\\n'
                       % (name, entry.filename, entry.lineno, entry.name, entry.line))
        out.append('\\n')
    return ''.join(out)
";

/// Every Python thread's stack, as uWSGI's tracebacker writes them.
pub fn tracebacker_dump() -> PyResult<String> {
    Python::attach(|py| {
        let module =
            PyModule::from_code(py, DUMP, c"kaiser_tracebacker.py", c"kaiser_tracebacker")?;
        module.getattr("dump")?.call0()?.extract()
    })
}
