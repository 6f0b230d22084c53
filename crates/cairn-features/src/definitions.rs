//! `features.yaml`: Feast's concepts under Feast's names. Entities have join keys; sources are
//! Parquet files with an event timestamp column (and optionally a created timestamp); feature
//! views name their entities, a time to live, typed features, a source and whether they are
//! served online; feature services list `view:feature` references (or whole views).
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// A join key's type: what entity values look like in requests and files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ValueType {
    Int64,
    Int32,
    String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    pub name: String,
    /// The columns that identify one entity (Feast allows one; several make a compound key).
    pub join_keys: Vec<String>,
    #[serde(default = "int64")]
    pub value_type: ValueType,
    #[serde(default)]
    pub description: String,
}

fn int64() -> ValueType {
    ValueType::Int64
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub name: String,
    /// A Parquet or CSV file, relative to the folder of `features.yaml`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// Or a Cairn dataset version: `NAME@VERSION`, or `NAME@VERSION:PATH` for a Parquet file
    /// inside a folder version. A version never changes, so neither does what the definitions
    /// that name it join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    pub timestamp_field: String,
    #[serde(default)]
    pub created_timestamp_column: Option<String>,
}

/// A dataset version a source names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetRef {
    pub name: String,
    pub version: i64,
    /// The Parquet file inside a folder version.
    pub path: Option<String>,
}

impl Source {
    /// The dataset version of a `dataset:` source (`None` for a `path:` one).
    pub fn dataset_version(&self) -> Result<Option<DatasetRef>> {
        let Some(text) = &self.dataset else {
            return Ok(None);
        };
        let bad = || {
            Error::invalid(format!(
                "source {}: dataset {text} is not NAME@VERSION or NAME@VERSION:PATH",
                self.name
            ))
        };
        let (reference, path) = match text.split_once(':') {
            Some((r, p)) => (r, Some(p.to_string())),
            None => (text.as_str(), None),
        };
        let (name, version) = reference.rsplit_once('@').ok_or_else(bad)?;
        let version: i64 = version.parse().map_err(|_| bad())?;
        if name.is_empty() || version < 1 {
            return Err(bad());
        }
        if let Some(p) = &path {
            let inner = Path::new(p);
            if p.is_empty()
                || inner.is_absolute()
                || inner
                    .components()
                    .any(|c| matches!(c, Component::ParentDir))
            {
                return Err(bad());
            }
        }
        Ok(Some(DatasetRef {
            name: name.to_string(),
            version,
            path,
        }))
    }
}

/// Where each source's Parquet file is: under the repository for a `path:` source, a dataset
/// version's bytes for a `dataset:` one (found by the caller, who knows where data lives).
#[derive(Debug, Clone, Default)]
pub struct SourceFiles {
    files: BTreeMap<String, PathBuf>,
}

impl SourceFiles {
    /// The `path:` sources of `d`, under `root` (the folder of `features.yaml`).
    pub fn under(d: &Definitions, root: &Path) -> SourceFiles {
        SourceFiles {
            files: d
                .sources
                .iter()
                .filter(|s| s.dataset.is_none())
                .map(|s| (s.name.clone(), root.join(&s.path)))
                .collect(),
        }
    }

    /// Sets the file of source `name`.
    pub fn insert(&mut self, name: &str, file: PathBuf) {
        self.files.insert(name.to_string(), file);
    }

    /// The file of `source`.
    pub fn path(&self, source: &Source) -> Result<&Path> {
        self.files
            .get(&source.name)
            .map(PathBuf::as_path)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "source {}: its dataset version's file was not found",
                    source.name
                ))
            })
    }
}

/// Feast's feature types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Dtype {
    Int32,
    Int64,
    Float32,
    Float64,
    String,
    Bool,
    UnixTimestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub name: String,
    pub dtype: Dtype,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureView {
    pub name: String,
    pub entities: Vec<String>,
    /// How long a value stays valid: seconds, or 30s, 15m, 2h, 1d, 1w; 0 for ever.
    #[serde(default)]
    pub ttl: Ttl,
    pub schema: Vec<Field>,
    pub source: String,
    #[serde(default = "yes")]
    pub online: bool,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// A time to live in seconds (0: no limit), written as a number or with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "serde_yaml::Value", into = "u64")]
pub struct Ttl(pub u64);

impl From<Ttl> for u64 {
    fn from(t: Ttl) -> u64 {
        t.0
    }
}

impl TryFrom<serde_yaml::Value> for Ttl {
    type Error = String;
    fn try_from(v: serde_yaml::Value) -> std::result::Result<Ttl, String> {
        match v {
            serde_yaml::Value::Number(n) => n
                .as_u64()
                .map(Ttl)
                .ok_or_else(|| format!("ttl {n} is not a whole number of seconds")),
            serde_yaml::Value::String(s) => parse_duration(&s).map(Ttl),
            other => Err(format!("ttl {other:?} is not a duration")),
        }
    }
}

/// `90`, `90s`, `15m`, `2h`, `1d`, `1w` → seconds.
pub fn parse_duration(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (like 3600, 30m, 2h, 1d)"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (s, m, h, d, w)")),
    };
    Ok(n * scale)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureService {
    pub name: String,
    /// `view:feature`, or `view` for all of its features.
    pub features: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// A project's definitions, checked: every reference resolves, names are unique.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definitions {
    pub project: String,
    #[serde(default)]
    pub entities: Vec<Entity>,
    #[serde(default)]
    pub sources: Vec<Source>,
    #[serde(default)]
    pub feature_views: Vec<FeatureView>,
    #[serde(default)]
    pub feature_services: Vec<FeatureService>,
}

/// One feature asked for: its view and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeatureRef {
    pub view: String,
    pub feature: String,
}

impl FeatureRef {
    /// The views of `features`, each once, in the order they first appear.
    pub fn views(features: &[FeatureRef]) -> Vec<&str> {
        let mut views: Vec<&str> = Vec::new();
        for f in features {
            if !views.contains(&f.view.as_str()) {
                views.push(&f.view);
            }
        }
        views
    }

    /// `view__feature` (Feast's `full_feature_names`) or `feature`.
    pub fn column(&self, full: bool) -> String {
        if full {
            format!("{}__{}", self.view, self.feature)
        } else {
            self.feature.clone()
        }
    }
}

fn unique<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut seen = BTreeSet::new();
    for n in names {
        if n.is_empty() {
            return Err(Error::invalid(format!("a {what} has an empty name")));
        }
        if !seen.insert(n) {
            return Err(Error::invalid(format!("two {what}s are named {n:?}")));
        }
    }
    Ok(())
}

impl Definitions {
    /// Parses and checks `features.yaml`; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Definitions> {
        let d: Definitions =
            serde_yaml::from_str(text).map_err(|e| Error::invalid(format!("{origin}: {e}")))?;
        d.check()
            .map_err(|e| Error::invalid(format!("{origin}: {e}")))?;
        Ok(d)
    }

    fn check(&self) -> Result<()> {
        if self.project.is_empty()
            || !self
                .project
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::invalid(format!(
                "project {:?}: letters, digits, - and _ only",
                self.project
            )));
        }
        unique("entity", self.entities.iter().map(|e| e.name.as_str()))?;
        unique("source", self.sources.iter().map(|s| s.name.as_str()))?;
        unique(
            "feature view",
            self.feature_views.iter().map(|v| v.name.as_str()),
        )?;
        unique(
            "feature service",
            self.feature_services.iter().map(|s| s.name.as_str()),
        )?;
        for e in &self.entities {
            if e.join_keys.is_empty() {
                return Err(Error::invalid(format!(
                    "entity {} has no join_keys",
                    e.name
                )));
            }
        }
        for s in &self.sources {
            match (s.path.is_empty(), &s.dataset) {
                (false, None) => {}
                (true, Some(_)) => {
                    s.dataset_version()?;
                    continue;
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "source {}: give either path (a Parquet file) or dataset \
                         (NAME@VERSION or NAME@VERSION:PATH)",
                        s.name
                    )))
                }
            }
            let p = Path::new(&s.path);
            if p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
                return Err(Error::invalid(format!(
                    "source {}: path {} must stay inside the project folder (no .., not absolute)",
                    s.name, s.path
                )));
            }
            if !s.path.ends_with(".parquet") && !crate::csv_source::is_csv(&s.path) {
                return Err(Error::invalid(format!(
                    "source {}: {} is not a .parquet or .csv file",
                    s.name, s.path
                )));
            }
        }
        for v in &self.feature_views {
            if v.entities.is_empty() {
                return Err(Error::invalid(format!(
                    "feature view {} names no entity",
                    v.name
                )));
            }
            for e in &v.entities {
                if self.entity(e).is_none() {
                    return Err(Error::invalid(format!(
                        "feature view {}: unknown entity {e}",
                        v.name
                    )));
                }
            }
            if self.source(&v.source).is_none() {
                return Err(Error::invalid(format!(
                    "feature view {}: unknown source {}",
                    v.name, v.source
                )));
            }
            if v.schema.is_empty() {
                return Err(Error::invalid(format!(
                    "feature view {} has no features",
                    v.name
                )));
            }
            unique(
                &format!("feature of view {}", v.name),
                v.schema.iter().map(|f| f.name.as_str()),
            )?;
            let keys = self.join_keys(v);
            if let Some(f) = v.schema.iter().find(|f| keys.contains(&f.name)) {
                return Err(Error::invalid(format!(
                    "feature view {}: {} is a join key, not a feature",
                    v.name, f.name
                )));
            }
        }
        for s in &self.feature_services {
            if s.features.is_empty() {
                return Err(Error::invalid(format!(
                    "feature service {} lists no features",
                    s.name
                )));
            }
            self.resolve(&s.features)
                .map_err(|e| Error::invalid(format!("feature service {}: {e}", s.name)))?;
        }
        Ok(())
    }

    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name == name)
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }

    pub fn view(&self, name: &str) -> Option<&FeatureView> {
        self.feature_views.iter().find(|v| v.name == name)
    }

    pub fn service(&self, name: &str) -> Option<&FeatureService> {
        self.feature_services.iter().find(|s| s.name == name)
    }

    /// A view's join keys, in the order of its entities.
    pub fn join_keys(&self, view: &FeatureView) -> Vec<String> {
        view.entities
            .iter()
            .filter_map(|e| self.entity(e))
            .flat_map(|e| e.join_keys.iter().cloned())
            .collect()
    }

    /// The type of a join key.
    pub fn key_type(&self, key: &str) -> Option<ValueType> {
        self.entities
            .iter()
            .find(|e| e.join_keys.iter().any(|k| k == key))
            .map(|e| e.value_type)
    }

    /// `view:feature` and `view` references → features, in the order given; unknown views or
    /// features are errors that name them.
    pub fn resolve(&self, refs: &[String]) -> Result<Vec<FeatureRef>> {
        let mut out = Vec::new();
        for r in refs {
            let (view_name, feature) = match r.split_once(':') {
                Some((v, f)) => (v, Some(f)),
                None => (r.as_str(), None),
            };
            let view = self.view(view_name).ok_or_else(|| {
                Error::invalid(format!(
                    "{r}: unknown feature view {view_name} (views: {})",
                    self.feature_views
                        .iter()
                        .map(|v| v.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            match feature {
                Some(f) => {
                    if !view.schema.iter().any(|s| s.name == f) {
                        return Err(Error::invalid(format!(
                            "{r}: view {view_name} has no feature {f} (features: {})",
                            view.schema
                                .iter()
                                .map(|s| s.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                    out.push(FeatureRef {
                        view: view_name.into(),
                        feature: f.into(),
                    });
                }
                None => out.extend(view.schema.iter().map(|s| FeatureRef {
                    view: view_name.into(),
                    feature: s.name.clone(),
                })),
            }
        }
        Ok(out)
    }

    /// The canonical text of the definitions (what is stored and digested).
    pub fn canonical(&self) -> String {
        serde_yaml::to_string(self).unwrap_or_default()
    }

    /// BLAKE3 of the canonical text.
    pub fn digest(&self) -> String {
        blake3::hash(self.canonical().as_bytes())
            .to_hex()
            .to_string()
    }

    /// What applying `self` over `before` changes, one line each (`+ `, `- `, `~ `).
    pub fn plan(&self, before: Option<&Definitions>) -> Vec<String> {
        fn diff<T: PartialEq>(
            kind: &str,
            old: &[T],
            new: &[T],
            name: impl Fn(&T) -> &str,
            out: &mut Vec<String>,
        ) {
            for n in new {
                match old.iter().find(|o| name(o) == name(n)) {
                    None => out.push(format!("+ {kind} {}", name(n))),
                    Some(o) if o != n => out.push(format!("~ {kind} {}", name(n))),
                    Some(_) => {}
                }
            }
            for o in old {
                if !new.iter().any(|n| name(n) == name(o)) {
                    out.push(format!("- {kind} {}", name(o)));
                }
            }
        }
        let empty = Definitions {
            project: self.project.clone(),
            entities: vec![],
            sources: vec![],
            feature_views: vec![],
            feature_services: vec![],
        };
        let before = before.unwrap_or(&empty);
        let mut out = Vec::new();
        diff(
            "entity",
            &before.entities,
            &self.entities,
            |e| &e.name,
            &mut out,
        );
        diff(
            "source",
            &before.sources,
            &self.sources,
            |s| &s.name,
            &mut out,
        );
        diff(
            "feature view",
            &before.feature_views,
            &self.feature_views,
            |v| &v.name,
            &mut out,
        );
        diff(
            "feature service",
            &before.feature_services,
            &self.feature_services,
            |s| &s.name,
            &mut out,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const DRIVERS: &str = "project: drivers
entities:
  - {name: driver, join_keys: [driver_id]}
sources:
  - {name: stats, path: data/stats.parquet, timestamp_field: event_timestamp, created_timestamp_column: created}
feature_views:
  - name: driver_stats
    entities: [driver]
    ttl: 1d
    schema:
      - {name: conv_rate, dtype: Float32}
      - {name: trips, dtype: Int64}
    source: stats
feature_services:
  - {name: activity, features: ['driver_stats:conv_rate']}
";

    #[test]
    fn definitions_parse_and_resolve() {
        let d = Definitions::parse(DRIVERS, "features.yaml").unwrap();
        assert_eq!(d.view("driver_stats").unwrap().ttl, Ttl(86_400));
        assert_eq!(d.join_keys(d.view("driver_stats").unwrap()), ["driver_id"]);
        let all = d.resolve(&["driver_stats".into()]).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].column(true), "driver_stats__trips");
        assert!(d.plan(Some(&d)).is_empty());
        assert_eq!(d.plan(None).len(), 4);
    }

    #[test]
    fn bad_definitions_name_the_problem() {
        for (from, to, says) in [
            (
                "entities: [driver]",
                "entities: [rider]",
                "unknown entity rider",
            ),
            ("source: stats\n", "source: nope\n", "unknown source nope"),
            (
                "'driver_stats:conv_rate'",
                "'driver_stats:speed'",
                "no feature speed",
            ),
            (
                "data/stats.parquet",
                "../stats.parquet",
                "inside the project folder",
            ),
            ("ttl: 1d", "ttl: 1 fortnight", "unknown unit"),
            ("name: trips", "name: driver_id", "is a join key"),
            ("name: trips", "name: conv_rate", "two feature of view"),
        ] {
            let text = DRIVERS.replace(from, to);
            assert_ne!(text, DRIVERS, "{from}");
            let err = Definitions::parse(&text, "f.yaml").unwrap_err().to_string();
            assert!(err.contains(says), "{to}: {err}");
        }
    }
}
