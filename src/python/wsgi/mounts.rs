//! `mount` and `manage-script-name`: which of the worker's apps answers a request.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The app, and the `mount`ed apps with their mountpoints.
pub(super) struct Mounts {
    app: Py<PyAny>,
    /// `mount`: (mountpoint, app); the request's SCRIPT_NAME picks one, else `app`.
    mounts: Vec<(String, Py<PyAny>)>,
    /// `manage-script-name`: the longest mountpoint that starts PATH_INFO moves into
    /// SCRIPT_NAME first.
    pub manage_script_name: bool,
}

impl Mounts {
    pub fn new(app: Py<PyAny>, mounts: Vec<(String, Py<PyAny>)>) -> Self {
        Mounts {
            app,
            mounts,
            manage_script_name: false,
        }
    }

    /// The app for this request: with mounts, the one whose mountpoint is SCRIPT_NAME (after
    /// `manage-script-name` moved the longest matching mountpoint there from PATH_INFO).
    pub fn route<'a>(&'a self, environ: &Bound<'_, PyDict>) -> PyResult<&'a Py<PyAny>> {
        if self.mounts.is_empty() {
            return Ok(&self.app);
        }
        let text = |key: &str| -> PyResult<String> {
            match environ.get_item(key)? {
                Some(value) => value.extract(),
                None => Ok(String::new()),
            }
        };
        let mut script_name = text("SCRIPT_NAME")?;
        if self.manage_script_name {
            let path_info = text("PATH_INFO")?;
            let points = self.mounts.iter().map(|(point, _)| point.as_str());
            if let Some(point) = mount_for(points, &path_info) {
                environ.set_item("SCRIPT_NAME", point)?;
                environ.set_item("PATH_INFO", &path_info[point.len()..])?;
                script_name = point.to_string();
            }
        }
        Ok(self
            .mounts
            .iter()
            .find(|(point, _)| *point == script_name)
            .map_or(&self.app, |(_, app)| app))
    }
}

/// The longest mountpoint that starts `path` at a segment boundary (`/app` takes `/app` and
/// `/app/x`, not `/apple`); the empty mountpoint (the root app) never does.
fn mount_for<'a>(points: impl Iterator<Item = &'a str>, path: &str) -> Option<&'a str> {
    points
        .filter(|point| {
            !point.is_empty()
                && path.starts_with(point)
                && matches!(path.as_bytes().get(point.len()), None | Some(b'/'))
        })
        .max_by_key(|point| point.len())
}

#[cfg(test)]
mod tests {
    use super::mount_for;

    #[test]
    fn the_longest_mountpoint_at_a_segment_boundary_wins() {
        let points = ["/app", "/app/admin", "/apple", ""];
        let cases = [
            ("/app", Some("/app")),
            ("/app/", Some("/app")),
            ("/app/x", Some("/app")),
            ("/app/admin/users", Some("/app/admin")),
            ("/app/administrator", Some("/app")),
            ("/apple/pie", Some("/apple")),
            ("/ap", None),
            ("/", None),
            ("", None),
            ("/other/app", None),
        ];
        for (path, expected) in cases {
            assert_eq!(
                mount_for(points.iter().copied(), path),
                expected,
                "{path:?}"
            );
        }
    }
}
