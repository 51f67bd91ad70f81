//! The master's own timers and crons: `timer = SIG SECS` / `rbtimer` (raise a uWSGI signal
//! every SECS seconds) and `cron = MIN HOUR DAY MONTH WEEKDAY COMMAND`, `unique-cron` and
//! `cron2 = key=value,… COMMAND` (run a command). Parsing only; the master runs them.

/// A command the master runs when the time matches (uWSGI's `-1` is any, `-N` every N).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronCommand {
    /// minute, hour, day of month, month, weekday.
    pub fields: [i64; 5],
    pub command: String,
    /// Not started again while the previous run is still going.
    pub unique: bool,
    /// Killed after this many seconds (0: never; `cron-harakiri` when not set here).
    pub harakiri: u64,
}

/// `timer`/`rbtimer`: signal and period.
pub fn parse_timer(value: &str) -> Result<(u8, u64), String> {
    let mut words = value.split_whitespace();
    let signal = words
        .next()
        .and_then(|w| w.parse::<u8>().ok())
        .ok_or_else(|| format!("expected `SIGNAL SECONDS` (signal 0-255), got `{value}`"))?;
    let seconds = words
        .next()
        .and_then(|w| w.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("expected `SIGNAL SECONDS` (seconds above 0), got `{value}`"))?;
    Ok((signal, seconds))
}

fn field(word: &str) -> Option<i64> {
    match word {
        "*" => Some(-1),
        _ => match word.strip_prefix("*/") {
            Some(every) => every.parse::<i64>().ok().filter(|n| *n > 0).map(|n| -n),
            None => word.parse().ok().filter(|n: &i64| *n >= -59),
        },
    }
}

/// `cron`/`unique-cron`: five fields, then the command.
pub fn parse_cron(value: &str, unique: bool) -> Result<CronCommand, String> {
    let mut rest = value.trim_start();
    let mut fields = [0i64; 5];
    for slot in &mut fields {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        *slot = field(&rest[..end]).ok_or_else(|| {
            format!(
                "expected `MINUTE HOUR DAY MONTH WEEKDAY COMMAND` (-1 or * for any), got `{value}`"
            )
        })?;
        rest = rest[end..].trim_start();
    }
    if rest.is_empty() {
        return Err(format!("the cron `{value}` has no command"));
    }
    Ok(CronCommand {
        fields,
        command: rest.to_string(),
        unique,
        harakiri: 0,
    })
}

/// `cron2 = minute=…,hour=…,day=…,month=…,week=…,unique=1,harakiri=N COMMAND`; a field left
/// out is any.
pub fn parse_cron2(value: &str) -> Result<CronCommand, String> {
    let value = value.trim();
    let (keys, command) = value
        .split_once(char::is_whitespace)
        .ok_or_else(|| format!("expected `key=value,… COMMAND`, got `{value}`"))?;
    let mut cron = CronCommand {
        fields: [-1; 5],
        command: command.trim().to_string(),
        unique: false,
        harakiri: 0,
    };
    for pair in keys.split(',').filter(|p| !p.is_empty()) {
        let (key, val) = pair
            .split_once('=')
            .ok_or_else(|| format!("`cron2`: expected `key=value`, got `{pair}`"))?;
        let number = || field(val).ok_or_else(|| format!("`cron2`: bad value `{val}` for `{key}`"));
        match key {
            "minute" => cron.fields[0] = number()?,
            "hour" => cron.fields[1] = number()?,
            "day" => cron.fields[2] = number()?,
            "month" => cron.fields[3] = number()?,
            "week" | "weekday" => cron.fields[4] = number()?,
            "unique" => cron.unique = val != "0",
            "harakiri" => {
                cron.harakiri = val
                    .parse()
                    .map_err(|_| format!("`cron2`: bad harakiri `{val}`"))?
            }
            other => return Err(format!("`cron2`: unsupported key `{other}`")),
        }
    }
    Ok(cron)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_and_crons() {
        assert_eq!(parse_timer("3 10"), Ok((3, 10)));
        assert!(parse_timer("300 10").is_err());
        assert!(parse_timer("3").is_err());
        let cron = parse_cron("-1 */2 * 1 7 touch /tmp/x y", false).unwrap();
        assert_eq!(cron.fields, [-1, -2, -1, 1, 7]);
        assert_eq!(cron.command, "touch /tmp/x y");
        assert!(parse_cron("1 2 3 4", false).is_err());
        assert!(parse_cron("1 2 3 4 5", false).is_err(), "no command");
        assert!(parse_cron("a 2 3 4 5 ls", false).is_err());
        let cron2 = parse_cron2("minute=-5,unique=1,harakiri=30 /bin/backup --all").unwrap();
        assert_eq!(cron2.fields, [-5, -1, -1, -1, -1]);
        assert!(cron2.unique);
        assert_eq!(cron2.harakiri, 30);
        assert_eq!(cron2.command, "/bin/backup --all");
        assert!(parse_cron2("legion=x ls").is_err());
    }
}
