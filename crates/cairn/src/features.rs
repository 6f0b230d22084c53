//! `cairn features`: the feature store. Definitions in `features.yaml` (Feast's concepts and
//! names) are applied to the metadata store, versioned; training sets are joined point in
//! time; the latest values are materialized into the online store (the metadata store's
//! database: SQLite under the home by default) and served in Feast's JSON.
use anyhow::{anyhow, bail, Context};
use cairn_core::model::DatasetSource;
use cairn_core::{FeatureRegistryStore, OnlineStore};
use cairn_features::definitions::{Definitions, SourceFiles};
use cairn_features::historical::{get_historical, write_parquet, HistoricalRequest};
use cairn_features::online::{last_materialized, materialize, Materialized};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct FeaturesArgs {
    /// The feature repository: the folder holding `features.yaml` (source paths are
    /// relative to it).
    #[arg(long, default_value = ".", global = true)]
    repo: PathBuf,
    /// Metadata store holding applied definitions and the online store (a server's
    /// `--backend-store-uri`). Default: the home's SQLite file.
    #[arg(long, env = "CAIRN_BACKEND_STORE_URI", global = true)]
    backend_store_uri: Option<String>,
    /// The online store: `redis://HOST[:PORT][/DB]` to share it between processes and
    /// machines. Default: the metadata store's database.
    #[arg(long, env = "CAIRN_ONLINE_STORE", global = true)]
    online_store: Option<String>,
    /// Where registered models keep their files (a server's `--artifacts-destination`): read
    /// to check that the versions bound to a service still get their inputs from it.
    /// Default: `<home>/artifacts`.
    #[arg(long, global = true)]
    artifacts_destination: Option<PathBuf>,
    #[command(subcommand)]
    command: FeaturesCommand,
}

#[derive(clap::Subcommand, Debug)]
enum FeaturesCommand {
    /// Check `features.yaml` (references, source files and their columns) and record it as
    /// the project's next version.
    Apply,
    /// Show what `apply` would change.
    Plan,
    /// Join features onto entity rows, point in time, into a Parquet file.
    GetHistorical {
        /// Parquet file of entity rows: join keys and a timestamp column.
        #[arg(long)]
        entities: PathBuf,
        /// view:feature or view, comma-separated.
        #[arg(long, value_delimiter = ',', conflicts_with = "service")]
        features: Vec<String>,
        /// A feature service instead of --features.
        #[arg(long)]
        service: Option<String>,
        /// The entity rows' timestamp column.
        #[arg(long, default_value = "event_timestamp")]
        timestamp_column: String,
        /// Name columns view__feature.
        #[arg(long)]
        full_feature_names: bool,
        /// Where to write the training set (.parquet).
        #[arg(long, short)]
        output: PathBuf,
        /// Also record the training set as a version of this Cairn dataset, made from the
        /// feature definitions and the source versions it read (its lineage).
        #[arg(long, value_name = "NAME")]
        dataset: Option<String>,
        /// The dataset version's message.
        #[arg(long, short, default_value = "", requires = "dataset")]
        message: String,
    },
    /// Write the latest values with event times in [START, END] to the online store.
    Materialize {
        /// Like 2026-11-01, 2026-11-01T12:00:00Z or seconds since the epoch.
        start: String,
        end: String,
        /// Only these views (comma-separated; default every online view).
        #[arg(long, value_delimiter = ',')]
        views: Vec<String>,
    },
    /// Materialize from where the last run of each view ended (or END minus its ttl) to END.
    MaterializeIncremental {
        end: String,
        #[arg(long, value_delimiter = ',')]
        views: Vec<String>,
    },
    /// Read feature values from the online store; prints Feast's JSON.
    GetOnline {
        /// view:feature or view, comma-separated.
        #[arg(long, value_delimiter = ',', conflicts_with = "service")]
        features: Vec<String>,
        #[arg(long)]
        service: Option<String>,
        /// JOIN_KEY=v1,v2,... (repeat for compound keys).
        #[arg(long = "entity", required = true)]
        entities: Vec<String>,
        #[arg(long)]
        full_feature_names: bool,
    },
    /// Bind a registered model version to a feature service: requests to it may then send the
    /// service's entity keys instead of the model's inputs (OIP and /invocations), and
    /// `apply` refuses definitions that would stop the service feeding it.
    Bind {
        /// models:/NAME/VERSION
        model: String,
        /// The feature service (of the repository's project).
        #[arg(long, required_unless_present = "unbind")]
        service: Option<String>,
        /// Remove the binding instead.
        #[arg(long, conflicts_with = "service")]
        unbind: bool,
    },
    /// Serve `POST /get-online-features` (Feast's feature server protocol).
    Serve {
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = 6566)]
        port: u16,
    },
}

/// A time given on the command line, as microseconds since the epoch.
fn parse_time(text: &str) -> anyhow::Result<i64> {
    let value = text
        .parse::<i64>()
        .map_or_else(|_| Value::from(text), Value::from);
    cairn_features::online::parse_time_micros(&value).ok_or_else(|| {
        anyhow!("{text:?} is not a time (2026-11-01, 2026-11-01T12:00:00Z or seconds)")
    })
}

fn read_definitions(repo: &Path) -> anyhow::Result<Definitions> {
    let path = repo.join("features.yaml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Definitions::parse(&text, &path.display().to_string())?)
}

/// The project's latest applied definitions (the repository's `features.yaml` names it).
fn applied(repo: &Path, registry: &dyn FeatureRegistryStore) -> anyhow::Result<Definitions> {
    Ok(applied_version(repo, registry)?.0)
}

/// [`applied`], with the version's number and digest.
fn applied_version(
    repo: &Path,
    registry: &dyn FeatureRegistryStore,
) -> anyhow::Result<(Definitions, i64, String)> {
    let project = read_definitions(repo)?.project;
    let stored = registry.definitions(&project, None)?.ok_or_else(|| {
        anyhow!("project {project} has no applied definitions: run `cairn features apply` first")
    })?;
    let d = Definitions::parse(
        &stored.text,
        &format!("{project} version {}", stored.version),
    )?;
    Ok((d, stored.version, stored.digest))
}

/// Where each source's file is: `path:` sources under the repository, `dataset:` sources in
/// the local data store (the version's bytes, read in place), with what each is for lineage.
fn source_files(
    d: &Definitions,
    repo: &Path,
    data: &DataLocation,
) -> anyhow::Result<(SourceFiles, Vec<(String, DatasetSource)>)> {
    let mut files = SourceFiles::under(d, repo);
    let mut lineage = Vec::new();
    let mut data_repo = None;
    for source in &d.sources {
        match source.dataset_version()? {
            None => {
                if cairn_features::csv_source::is_csv(&source.path) {
                    let csv = repo.join(&source.path);
                    let digest = cairn_data::digest::Digest::of_file(&csv)
                        .with_context(|| format!("source {}: {}", source.name, csv.display()))?
                        .to_hex();
                    files.insert(&source.name, csv_as_parquet(d, source, &csv, &digest)?);
                }
                lineage.push((
                    source.name.clone(),
                    DatasetSource {
                        kind: "file".into(),
                        reference: source.path.clone(),
                        digest: String::new(),
                    },
                ));
            }
            Some(r) => {
                if data_repo.is_none() {
                    data_repo = Some(data.open()?);
                }
                let Some(data_repo) = data_repo.as_ref() else {
                    continue;
                };
                let found =
                    crate::data::version_file(data_repo, &r.name, r.version, r.path.as_deref())
                        .with_context(|| format!("source {}", source.name))?;
                let object = data_repo.cas().object_path(&found.object);
                let file = if cairn_features::csv_source::is_csv(&found.file_name) {
                    csv_as_parquet(d, source, &object, &found.object.to_hex())?
                } else {
                    object
                };
                files.insert(&source.name, file);
                lineage.push((
                    source.name.clone(),
                    DatasetSource {
                        kind: "dataset".into(),
                        reference: source.dataset.clone().unwrap_or_default(),
                        digest: found.record.digest,
                    },
                ));
            }
        }
    }
    Ok((files, lineage))
}

/// A CSV source read into typed Parquet, kept under the home by the CSV's digest and the
/// types read (read again only when either changes).
fn csv_as_parquet(
    d: &Definitions,
    source: &cairn_features::definitions::Source,
    csv: &Path,
    digest: &str,
) -> anyhow::Result<PathBuf> {
    let columns = cairn_features::csv_source::csv_columns(d, source)?;
    let key = cairn_data::digest::Digest::of(format!("{digest}\n{columns:?}").as_bytes()).to_hex();
    let dir = crate::home_dir().join("features").join("csv");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let out = dir.join(format!("{key}.parquet"));
    if !out.is_file() {
        cairn_features::csv_source::csv_to_parquet(csv, &out, &columns)
            .with_context(|| format!("source {}", source.name))?;
    }
    Ok(out)
}

/// The data store: the project root (found from the working folder, as `cairn data` finds it),
/// the home's object store, the metadata store's dataset versions.
struct DataLocation {
    store: Arc<cairn_store::SqlStore>,
}

impl DataLocation {
    fn open(&self) -> anyhow::Result<cairn_data::repo::DataRepo> {
        let cwd = std::env::current_dir().context("no working directory")?;
        let home = crate::home_dir();
        std::fs::create_dir_all(&home)?;
        let home = std::fs::canonicalize(&home)?;
        Ok(cairn_data::repo::DataRepo::open(
            &cairn_data::repo::find_root(&cwd),
            &home.join("data"),
            self.store.clone(),
        )?)
    }
}

/// Checks that every source file is there with the columns its views use.
fn check_sources(d: &Definitions, files: &SourceFiles) -> anyhow::Result<()> {
    for view in &d.feature_views {
        let source = d
            .source(&view.source)
            .ok_or_else(|| anyhow!("unknown source"))?;
        let path = files.path(source)?;
        let file = std::fs::File::open(path)
            .with_context(|| format!("source {}: cannot open {}", source.name, path.display()))?;
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| anyhow!("source {}: {}: {e}", source.name, path.display()))?;
        let columns: Vec<String> = builder
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut needed = d.join_keys(view);
        needed.push(source.timestamp_field.clone());
        needed.extend(source.created_timestamp_column.clone());
        needed.extend(view.schema.iter().map(|f| f.name.clone()));
        for c in needed {
            if !columns.contains(&c) {
                bail!(
                    "feature view {}: source {} has no column {c} (columns: {})",
                    view.name,
                    path.display(),
                    columns.join(", ")
                );
            }
        }
    }
    Ok(())
}

fn bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{msg} {pos} rows read {per_sec}") {
        bar.set_style(style);
    }
    bar
}

fn print_materialized(done: &[Materialized]) {
    for m in done {
        println!(
            "Materialized {}: {} rows in range, {} entities written",
            m.view, m.rows, m.entities
        );
    }
}

/// The online store a URL names (Redis), or the metadata store's database.
pub fn online_store(
    url: Option<&str>,
    metadata: Arc<cairn_store::SqlStore>,
) -> anyhow::Result<Arc<dyn OnlineStore>> {
    match url {
        None => Ok(metadata),
        Some(u) if u.starts_with("redis://") => Ok(Arc::new(
            cairn_store::RedisOnlineStore::open(u)
                .with_context(|| format!("cannot open the online store {u}"))?,
        )),
        Some(u) => bail!(
            "online store {u}: give redis://HOST[:PORT][/DB], or leave it out for the metadata store"
        ),
    }
}

pub fn run(args: FeaturesArgs) -> anyhow::Result<i32> {
    let home = crate::home_dir();
    let store = crate::server::metadata_store(args.backend_store_uri.as_deref(), &home)?;
    let online = online_store(args.online_store.as_deref(), store.clone())?;
    let repo = args.repo.as_path();
    let locations = (
        args.backend_store_uri.clone(),
        args.artifacts_destination.clone(),
    );
    let data = DataLocation {
        store: store.clone(),
    };
    match args.command {
        FeaturesCommand::Apply => {
            let d = read_definitions(repo)?;
            let (files, _) = source_files(&d, repo, &data)?;
            check_sources(&d, &files)?;
            let models = BoundModels::open(&locations)?;
            let broken = models.broken_by(&d)?;
            if !broken.is_empty() {
                bail!(
                    "not applied: these definitions would break the feature service of bound \
                     model versions (unbind them with `cairn features bind MODEL --unbind`, or \
                     keep what they use):\n  {}",
                    broken.join("\n  ")
                );
            }
            let before = store
                .definitions(&d.project, None)?
                .map(|s| Definitions::parse(&s.text, "the applied definitions"))
                .transpose()?;
            let changes = d.plan(before.as_ref());
            let (version, new) = store.put_definitions(
                &d.project,
                &d.canonical(),
                &d.digest(),
                cairn_core::now_millis(),
            )?;
            for c in &changes {
                println!("{c}");
            }
            if new {
                println!("Applied project {} version {version}", d.project);
            } else {
                println!(
                    "No changes: project {} stays at version {version}",
                    d.project
                );
            }
        }
        FeaturesCommand::Plan => {
            let d = read_definitions(repo)?;
            let before = store
                .definitions(&d.project, None)?
                .map(|s| Definitions::parse(&s.text, "the applied definitions"))
                .transpose()?;
            let changes = d.plan(before.as_ref());
            if changes.is_empty() {
                println!("No changes.");
            }
            for c in changes {
                println!("{c}");
            }
        }
        FeaturesCommand::GetHistorical {
            entities,
            features,
            service,
            timestamp_column,
            full_feature_names,
            output,
            dataset,
            message,
        } => {
            let (d, definitions_version, definitions_digest) = applied_version(repo, &*store)?;
            let (files, sources) = source_files(&d, repo, &data)?;
            let refs = match service {
                Some(s) => d
                    .service(&s)
                    .ok_or_else(|| anyhow!("unknown feature service {s}"))?
                    .features
                    .clone(),
                None if features.is_empty() => bail!("give --features or --service"),
                None => features,
            };
            let features = d.resolve(&refs)?;
            let (table, outcome) = get_historical(&HistoricalRequest {
                definitions: &d,
                files: &files,
                entities: &entities,
                timestamp_column: &timestamp_column,
                features: &features,
                full_feature_names,
            })?;
            write_parquet(&table, &output)?;
            println!(
                "Wrote {} rows with {} features to {}",
                outcome.rows,
                features.len(),
                output.display()
            );
            for (view, matched) in &outcome.matched {
                println!("  {view}: {matched} of {} rows found a value", outcome.rows);
            }
            if let Some(name) = dataset {
                // The sources of the views joined, and the definitions that joined them.
                let used: Vec<&str> = cairn_features::definitions::FeatureRef::views(&features)
                    .into_iter()
                    .filter_map(|v| d.view(v).map(|v| v.source.as_str()))
                    .collect();
                let mut made_from = vec![DatasetSource {
                    kind: "features".into(),
                    reference: format!("{}@{definitions_version}", d.project),
                    digest: definitions_digest,
                }];
                for (source, mut entry) in sources {
                    if !used.contains(&source.as_str()) {
                        continue;
                    }
                    if entry.kind == "file" {
                        let path = repo.join(&entry.reference);
                        entry.digest = cairn_data::digest::Digest::of_file(&path)?.to_hex();
                        entry.reference = std::fs::canonicalize(&path)?.display().to_string();
                    }
                    made_from.push(entry);
                }
                let entities_path = std::fs::canonicalize(&entities)?;
                made_from.push(DatasetSource {
                    kind: "file".into(),
                    reference: entities_path.display().to_string(),
                    digest: cairn_data::digest::Digest::of_file(&entities_path)?.to_hex(),
                });
                let data_repo = data.open()?;
                let cwd = std::env::current_dir().context("no working directory")?;
                let added = data_repo.add(
                    &cwd,
                    &output,
                    Some(&name),
                    &message,
                    &cairn_data::progress::NoProgress,
                )?;
                let version = added.version.version;
                data_repo
                    .meta()
                    .record_dataset_sources(&name, version, &made_from)?;
                println!(
                    "Recorded {name}@{version}, made from {}",
                    made_from
                        .iter()
                        .map(|m| format!("{} {}", m.kind, m.reference))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
        }
        FeaturesCommand::Materialize { start, end, views } => {
            let d = applied(repo, &*store)?;
            let (files, _) = source_files(&d, repo, &data)?;
            let (start, end) = (parse_time(&start)?, parse_time(&end)?);
            if start > end {
                bail!("the start is after the end");
            }
            let progress = bar(0);
            let done = materialize(
                &d,
                &files,
                &*online,
                &views,
                Some(start),
                end,
                &mut |view, n| {
                    progress.set_message(format!("materializing {view}"));
                    progress.inc(n);
                },
            )?;
            progress.finish_and_clear();
            print_materialized(&done);
        }
        FeaturesCommand::MaterializeIncremental { end, views } => {
            let d = applied(repo, &*store)?;
            let (files, _) = source_files(&d, repo, &data)?;
            let end = parse_time(&end)?;
            let progress = bar(0);
            let mut done = Vec::new();
            for view in d
                .feature_views
                .iter()
                .filter(|v| v.online && (views.is_empty() || views.contains(&v.name)))
            {
                let start = match last_materialized(&d, &*online, &view.name)? {
                    Some(last) => Some(last),
                    None if view.ttl.0 > 0 => Some(end - view.ttl.0 as i64 * 1_000_000),
                    None => None,
                };
                done.extend(materialize(
                    &d,
                    &files,
                    &*online,
                    std::slice::from_ref(&view.name),
                    start,
                    end,
                    &mut |v, n| {
                        progress.set_message(format!("materializing {v}"));
                        progress.inc(n);
                    },
                )?);
            }
            progress.finish_and_clear();
            print_materialized(&done);
        }
        FeaturesCommand::GetOnline {
            features,
            service,
            entities,
            full_feature_names,
        } => {
            let project = read_definitions(repo)?.project;
            let server =
                cairn_api::features::FeatureServer::new(store.clone(), online.clone(), &project);
            let mut map = serde_json::Map::new();
            for e in entities {
                let (key, values) = e
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--entity {e}: expected JOIN_KEY=v1,v2"))?;
                let values: Vec<Value> = values
                    .split(',')
                    .map(|v| {
                        v.parse::<i64>()
                            .map(Value::from)
                            .unwrap_or_else(|_| Value::from(v))
                    })
                    .collect();
                map.insert(key.to_string(), Value::Array(values));
            }
            let mut body =
                serde_json::json!({"entities": map, "full_feature_names": full_feature_names});
            match service {
                Some(s) => body["feature_service"] = Value::from(s),
                None => body["features"] = Value::from(features),
            }
            let answer = server
                .get_online_features(&body)
                .map_err(|e| anyhow!("{}", e.message()))?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
        }
        FeaturesCommand::Bind {
            model,
            service,
            unbind,
        } => {
            let (name, version) = parse_model_version(&model)?;
            let models = BoundModels::open(&locations)?;
            match service {
                Some(service) if !unbind => {
                    let d = applied(repo, &*store)?;
                    let served = models.load(&name, version)?;
                    if let Err(why) = check_service(&d, &service, &served) {
                        bail!("cannot bind {model} to feature service {service}: {why}");
                    }
                    let stored = store.definitions(&d.project, None)?.ok_or_else(|| {
                        anyhow!("project {} has no applied definitions", d.project)
                    })?;
                    for (key, value) in [
                        (cairn_core::FEATURE_SERVICE_TAG, service.clone()),
                        (FEATURE_PROJECT_TAG, d.project.clone()),
                        (FEATURE_DEFINITIONS_TAG, stored.version.to_string()),
                    ] {
                        models
                            .registry
                            .set_version_tag(&name, version, key, &value)?;
                    }
                    println!(
                        "Bound {model} to feature service {service} of project {} (definitions \
                         version {}): requests may send its entity keys",
                        d.project, stored.version
                    );
                }
                _ => {
                    models.registry.get_version(&name, version)?;
                    for key in [
                        cairn_core::FEATURE_SERVICE_TAG,
                        FEATURE_PROJECT_TAG,
                        FEATURE_DEFINITIONS_TAG,
                    ] {
                        let _ = models.registry.delete_version_tag(&name, version, key);
                    }
                    println!("Unbound {model}");
                }
            }
        }
        FeaturesCommand::Serve { host, port } => {
            let project = read_definitions(repo)?.project;
            let registry: Arc<dyn FeatureRegistryStore> = store.clone();
            let server = Arc::new(cairn_api::features::FeatureServer::new(
                registry, online, &project,
            ));
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = crate::server::bind(&host, port).await?;
                println!(
                    "Cairn feature server for project {project} listening on http://{}",
                    listener.local_addr()?
                );
                let router = cairn_api::features::routes(server)
                    .route("/health", axum::routing::get(|| async { "OK" }));
                axum::serve(listener, router)
                    .with_graceful_shutdown(async {
                        let _ = tokio::signal::ctrl_c().await;
                    })
                    .await?;
                anyhow::Ok(())
            })?;
        }
    }
    Ok(0)
}

/// The version tag naming the project of a version's feature service.
const FEATURE_PROJECT_TAG: &str = "cairn.feature_project";
/// The version tag naming the definitions version the binding was made with.
const FEATURE_DEFINITIONS_TAG: &str = "cairn.feature_definitions";

/// `models:/NAME/VERSION` as (name, number).
fn parse_model_version(uri: &str) -> anyhow::Result<(String, i64)> {
    uri.strip_prefix("models:/")
        .and_then(|rest| rest.rsplit_once('/'))
        .and_then(|(name, v)| Some((name.to_string(), v.parse::<i64>().ok()?)))
        .filter(|(name, v)| !name.is_empty() && *v > 0)
        .ok_or_else(|| anyhow!("'{uri}' is not of the form models:/NAME/VERSION"))
}

/// The columns a service's online answer has: its views' join keys, then each feature in
/// full (`view__feature`), in the order the feature server answers them; and how many keys.
fn service_columns(d: &Definitions, service: &str) -> Result<(Vec<String>, usize), String> {
    let wanted = d
        .service(service)
        .ok_or_else(|| format!("project {} has no feature service {service}", d.project))?;
    let features = d.resolve(&wanted.features).map_err(|e| e.to_string())?;
    let mut names: Vec<String> = Vec::new();
    for view in cairn_features::definitions::FeatureRef::views(&features) {
        let view = d
            .view(view)
            .ok_or_else(|| format!("unknown feature view {view}"))?;
        if !view.online {
            return Err(format!(
                "feature view {} of service {service} is not served online (online: false)",
                view.name
            ));
        }
        for key in d.join_keys(view) {
            if !names.contains(&key) {
                names.push(key);
            }
        }
    }
    let keys = names.len();
    for view in cairn_features::definitions::FeatureRef::views(&features) {
        names.extend(
            features
                .iter()
                .filter(|f| f.view == view)
                .map(|f| f.column(true)),
        );
    }
    Ok((names, keys))
}

/// Whether `service` of `d` can feed every input of `served`.
fn check_service(
    d: &Definitions,
    service: &str,
    served: &cairn_api::oip::ServedModel,
) -> Result<(), String> {
    let (names, keys) = service_columns(d, service)?;
    cairn_api::bound::check_binding(served, service, &names, keys).map_err(|e| e.1)
}

/// The registry, and the files of its models, for checking bindings.
struct BoundModels {
    registry: cairn_core::Registry,
    models: cairn_api::served::RegistryModels,
}

impl BoundModels {
    /// The registry and artifacts `locations` names (backend store, artifacts destination).
    fn open(locations: &(Option<String>, Option<PathBuf>)) -> anyhow::Result<BoundModels> {
        let mut server = crate::server::ServerArgs::local();
        server.backend_store_uri = locations.0.clone();
        server.artifacts_destination = locations.1.clone();
        let (state, _) = crate::server::open_state(&server, &crate::home_dir())?;
        Ok(BoundModels {
            registry: state.registry.clone(),
            models: cairn_api::served::RegistryModels::new(
                state.registry,
                state.artifacts,
                cairn_serving::RunnerOptions::default(),
                cairn_api::served::CacheBounds::default(),
            ),
        })
    }

    fn load(&self, name: &str, version: i64) -> anyhow::Result<Arc<cairn_api::oip::ServedModel>> {
        use cairn_api::oip::ModelSource;
        self.models
            .resolve(name, Some(&version.to_string()))
            .map_err(|e| anyhow!("models:/{name}/{version}: {e}"))
    }

    /// What `d` would break: each version of `d`'s project bound to a service that `d` no
    /// longer has, or that no longer feeds the model's inputs.
    fn broken_by(&self, d: &Definitions) -> anyhow::Result<Vec<String>> {
        let filter = format!("tags.`{}` LIKE '%'", cairn_core::FEATURE_SERVICE_TAG);
        let mut broken = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .registry
                .search_versions(&filter, &[], Some(1000), &token)?;
            for v in &page.items {
                let tag = |key: &str| v.tags.iter().find(|t| t.key == key).map(|t| &t.value);
                if tag(FEATURE_PROJECT_TAG).is_some_and(|p| *p != d.project) {
                    continue;
                }
                let Some(service) = tag(cairn_core::FEATURE_SERVICE_TAG) else {
                    continue;
                };
                let served = self.load(&v.name, v.version)?;
                if let Err(why) = check_service(d, service, &served) {
                    broken.push(format!(
                        "models:/{}/{} (feature service {service}): {why}",
                        v.name, v.version
                    ));
                }
            }
            match page.next_offset {
                Some(offset) => token = cairn_core::search::page_token(offset),
                None => break,
            }
        }
        Ok(broken)
    }
}
