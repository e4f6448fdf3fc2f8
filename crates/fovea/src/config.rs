//! The config-file layer: `fovea.toml` (or `--config FILE` / `FOVEA_CONFIG`) fills in settings that neither a flag
//! nor an environment variable gave. Precedence: flag > environment > file > built-in default.
//!
//! The file's values are exported as the `FOVEA_*` variables clap already reads, before clap parses, so every
//! setting has one definition (its `#[arg(env = …)]`) and the three layers cannot disagree about names or types.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// Every key a config file may hold, with the environment variable that carries it.
pub const KEYS: &[(&str, &str)] = &[
    ("home", "FOVEA_HOME"),
    ("backbone", "FOVEA_BACKBONE"),
    ("engine", "FOVEA_ENGINE"),
    ("data", "FOVEA_DATA"),
    ("catalog", "FOVEA_CATALOG"),
    ("blobs", "FOVEA_BLOBS"),
    ("s3_endpoint", "AWS_ENDPOINT_URL"),
    ("s3_region", "AWS_REGION"),
    ("s3_access_key_id", "AWS_ACCESS_KEY_ID"),
    ("s3_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
    ("head", "FOVEA_HEAD"),
    ("cutoff", "FOVEA_CUTOFF"),
    ("max_upload_mb", "FOVEA_MAX_UPLOAD_MB"),
    ("max_megapixels", "FOVEA_MAX_MEGAPIXELS"),
    ("listen", "FOVEA_LISTEN"),
    ("train_schedule", "FOVEA_TRAIN_SCHEDULE"),
    ("drift_reference", "FOVEA_DRIFT_REFERENCE"),
    ("drift_window", "FOVEA_DRIFT_WINDOW"),
    ("drift_webhook", "FOVEA_DRIFT_WEBHOOK"),
];

/// The default file, read when present and no other was named.
pub const DEFAULT_FILE: &str = "fovea.toml";

/// Finds the config file named by `--config FILE` / `--config=FILE`, `FOVEA_CONFIG`, or `./fovea.toml`.
pub fn locate(args: &[String]) -> Option<(PathBuf, bool)> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            return it.next().map(|p| (PathBuf::from(p), true));
        }
        if let Some(p) = a.strip_prefix("--config=") {
            return Some((PathBuf::from(p), true));
        }
    }
    if let Ok(p) = std::env::var("FOVEA_CONFIG") {
        return Some((PathBuf::from(p), true));
    }
    let default = PathBuf::from(DEFAULT_FILE);
    default.is_file().then_some((default, false))
}

/// Parses a config file into (environment variable, value) pairs; unknown keys and bad types are errors.
pub fn parse(text: &str, path: &Path) -> anyhow::Result<Vec<(&'static str, String)>> {
    let table: toml::Table = text.parse().with_context(|| format!("{} is not valid TOML", path.display()))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let Some(&(_, var)) = KEYS.iter().find(|(k, _)| *k == key) else {
            let known: Vec<&str> = KEYS.iter().map(|(k, _)| *k).collect();
            bail!("{}: unknown setting `{key}` (known: {})", path.display(), known.join(", "));
        };
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => bail!("{}: `{key}` must be a string or a number, not {}", path.display(), other.type_str()),
        };
        out.push((var, text));
    }
    Ok(out)
}

/// Reads the config file, if any, and exports its values where the environment has none.
pub fn apply(args: &[String]) -> anyhow::Result<Option<PathBuf>> {
    let Some((path, named)) = locate(args) else { return Ok(None) };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if !named && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading config file {}", path.display())),
    };
    for (var, value) in parse(&text, &path)? {
        if std::env::var_os(var).is_none() {
            // Single-threaded here: main calls this before clap parses and before any thread starts.
            unsafe { std::env::set_var(var, value) };
        }
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_become_environment_pairs_and_unknown_keys_are_refused() {
        let p = Path::new("f.toml");
        let pairs = parse("data = \"/srv/fovea\"\ncutoff = 25\nlisten = \"0.0.0.0:9000\"", p).unwrap();
        assert!(pairs.contains(&("FOVEA_DATA", "/srv/fovea".into())));
        assert!(pairs.contains(&("FOVEA_CUTOFF", "25".into())));
        let shared = "catalog = \"postgres://db/fovea\"\nblobs = \"s3://b/p\"\ns3_endpoint = \"http://s3:9000\"";
        let pairs = parse(shared, p).unwrap();
        assert!(pairs.contains(&("FOVEA_CATALOG", "postgres://db/fovea".into())));
        assert!(pairs.contains(&("FOVEA_BLOBS", "s3://b/p".into())));
        assert!(pairs.contains(&("AWS_ENDPOINT_URL", "http://s3:9000".into())));
        let err = parse("cutof = 3", p).unwrap_err().to_string();
        assert!(err.contains("unknown setting `cutof`"), "{err}");
        let err = parse("data = [1]", p).unwrap_err().to_string();
        assert!(err.contains("must be a string or a number"), "{err}");
        assert!(parse("data = ", p).is_err());
    }

    #[test]
    fn the_config_flag_wins_over_the_default_file() {
        let args: Vec<String> = ["fovea", "serve", "--config", "x.toml"].iter().map(|s| s.to_string()).collect();
        assert_eq!(locate(&args), Some((PathBuf::from("x.toml"), true)));
        let args: Vec<String> = ["fovea", "--config=y.toml"].iter().map(|s| s.to_string()).collect();
        assert_eq!(locate(&args), Some((PathBuf::from("y.toml"), true)));
    }
}
