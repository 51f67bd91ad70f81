//! The source files of the loaded Python modules, for `py-autoreload`.

use std::path::PathBuf;

use pyo3::prelude::*;

/// Each module in `sys.modules` with a `__file__` (but those named in `ignore`), with the
/// last letter of a `.pyc`/`.pyo`/`.pyd` dropped, as uWSGI's reloader reads them. Takes the
/// GIL briefly.
pub fn loaded_module_files(ignore: &[String]) -> Vec<PathBuf> {
    Python::attach(|py| {
        let listed = (|| -> PyResult<Vec<PathBuf>> {
            let modules = py.import("sys")?.getattr("modules")?;
            // A copy: another thread may import while we walk it.
            let items = modules.call_method0("copy")?.call_method0("items")?;
            let mut files = Vec::new();
            for item in items.try_iter()? {
                let (name, module): (String, Bound<'_, PyAny>) = match item?.extract() {
                    Ok(pair) => pair,
                    Err(_) => continue,
                };
                if ignore.contains(&name) {
                    continue;
                }
                let Ok(file) = module.getattr("__file__") else {
                    continue;
                };
                let Ok(mut file) = file.extract::<String>() else {
                    continue;
                };
                if file.ends_with(".pyc") || file.ends_with(".pyo") || file.ends_with(".pyd") {
                    file.pop();
                }
                files.push(PathBuf::from(file));
            }
            Ok(files)
        })();
        listed.unwrap_or_default()
    })
}
