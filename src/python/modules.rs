//! The source files of the loaded Python modules, for `py-autoreload`.

use std::path::PathBuf;

use pyo3::prelude::*;

/// Each module in `sys.modules` with a `__file__`, the source (`.py`) for a `.pyc`/`.pyo`,
/// as uWSGI's reloader reads them. Takes the GIL briefly.
pub fn loaded_module_files() -> Vec<PathBuf> {
    Python::attach(|py| {
        let listed = (|| -> PyResult<Vec<PathBuf>> {
            let modules = py.import("sys")?.getattr("modules")?;
            // A copy: another thread may import while we walk it.
            let values = modules.call_method0("copy")?.call_method0("values")?;
            let mut files = Vec::new();
            for module in values.try_iter()? {
                let Ok(file) = module?.getattr("__file__") else {
                    continue;
                };
                let Ok(mut file) = file.extract::<String>() else {
                    continue;
                };
                if file.ends_with(".pyc") || file.ends_with(".pyo") {
                    file.pop();
                }
                files.push(PathBuf::from(file));
            }
            Ok(files)
        })();
        listed.unwrap_or_default()
    })
}
