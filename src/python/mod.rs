//! The embedded CPython: the only module of kaiser that names pyo3.
//!
//! It initialises the interpreter (honouring a venv), imports the WSGI app, forks with the
//! interpreter in a consistent state, provides `import uwsgi`, and runs one WSGI request
//! against an [`Exchange`] that the worker implements over its socket. It does no socket
//! I/O of its own and knows nothing of HTTP framing: bytes in, status/headers/bytes out.

mod app;
mod cache;
mod interpreter;
mod loaders;
mod locks;
mod modules;
mod mules;
mod raw;
mod rpc;
mod signals;
mod spooler;
mod tracebacker;
mod tracebacks;
mod uwsgi_module;
mod wsgi;

pub use app::{load_app, App, AppSpec, LoadAppError};
pub use cache::{cache_stats, create_caches, sweep_caches};
pub use interpreter::{
    fork, freeze_heap, initialize, prepare_request_thread, run_exit_handlers, run_signal_handlers,
    set_signal_wakeup_fd, with_thread_state, InitPythonError, InterpreterOptions,
};
pub use locks::create_locks;
pub use modules::loaded_module_files;
pub use mules::{
    create_mules, mule_busy_since, run_mule_loop, run_mule_script, send_to_mule, set_mule_id,
};
pub use raw::{RawConnection, RawHandler, RawOutcome};
pub use signals::{dispatch_pending as dispatch_uwsgi_signals, set_spooler_signal_slot};
pub use spooler::{
    import_spooler_modules, run_spooler_task, set_i_am_the_spooler, set_spooler_api, SpoolVars,
    SpoolerApi, TaskVerdict,
};
pub use tracebacker::tracebacker_dump;
pub use tracebacks::{thread_stacks, thread_stacks_within};
pub use uwsgi_module::{
    current_worker_id, install as install_uwsgi_module, request_logvar, request_user_harakiri,
    run_post_fork_hook, set_accepting_hook, set_user_harakiri_hook, set_worker_id,
    set_workers_hook, take_log_this_request, take_logvars, ModuleInfo, WorkerFigures,
};
pub use wsgi::{
    Exchange, ListenerEnv, Outcome, RequestVars, RespondError, ResponseHead, WsgiRunner,
};
