//! Registered model versions as Open Inference Protocol models inside `cairn server`: the OIP
//! model name is the registered model's name, the OIP version its number or an alias.
use crate::artifacts::proxied_root;
use crate::oip::{unknown_text, ModelError, ModelSource, ServedModel};
use cairn_core::paths::ArtifactPath;
use cairn_core::registry::parse_version;
use cairn_core::{ArtifactStore, Error, Registry};
use cairn_serving::{OnnxModel, Runner, RunnerOptions};
use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

/// Resolves names, numbers and aliases through the registry on every request (so a moved
/// alias answers from the next request on) and keeps each loaded version in memory.
pub struct RegistryModels {
    registry: Registry,
    artifacts: Arc<dyn ArtifactStore>,
    loaded: Mutex<HashMap<(String, i64), Arc<ServedModel>>>,
    options: RunnerOptions,
}

impl RegistryModels {
    /// Serves the versions of `registry` whose files are in `artifacts`.
    pub fn new(
        registry: Registry,
        artifacts: Arc<dyn ArtifactStore>,
        options: RunnerOptions,
    ) -> Self {
        RegistryModels {
            registry,
            artifacts,
            loaded: Mutex::new(HashMap::new()),
            options,
        }
    }

    fn version_number(&self, name: &str, version: Option<&str>) -> Result<i64, Error> {
        match version {
            None => self
                .registry
                .get_model(name)?
                .latest_versions
                .iter()
                .map(|v| v.version)
                .max()
                .ok_or_else(|| Error::not_found(format!("model '{name}' has no versions"))),
            Some(v) if v.chars().all(|c| c.is_ascii_digit()) => {
                let n = parse_version(v)?;
                self.registry.get_version(name, n).map(|mv| mv.version)
            }
            Some(alias) => self
                .registry
                .version_by_alias(name, alias)
                .map(|mv| mv.version),
        }
    }

    fn load(&self, name: &str, number: i64) -> Result<OnnxModel, ModelError> {
        let unservable =
            |why: String| ModelError::Unservable(format!("model '{name}' version {number}: {why}"));
        let version = self
            .registry
            .get_version(name, number)
            .map_err(|e| unservable(e.to_string()))?;
        let root = proxied_root(&version.storage_location).ok_or_else(|| {
            unservable(format!(
                "its files are not in Cairn's artifact store ({})",
                version.storage_location
            ))
        })?;
        let dir = ArtifactPath::parse(&root).map_err(|e| unservable(e.to_string()))?;
        let onnx: Vec<String> = self
            .artifacts
            .list(&dir)
            .map_err(|e| unservable(e.to_string()))?
            .into_iter()
            .filter(|e| !e.is_dir && e.path.ends_with(".onnx"))
            .map(|e| e.path)
            .collect();
        let file = match onnx.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(unservable(format!(
                    "no .onnx file in {}",
                    version.storage_location
                )))
            }
            _ => {
                return Err(unservable(format!(
                    "several .onnx files in {}",
                    version.storage_location
                )))
            }
        };
        let path = dir.join(&ArtifactPath::parse(&file).map_err(|e| unservable(e.to_string()))?);
        let (mut reader, size) = self
            .artifacts
            .open(&path)
            .map_err(|e| unservable(e.to_string()))?;
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .read_to_end(&mut bytes)
            .map_err(|e| unservable(e.to_string()))?;
        OnnxModel::from_bytes(&bytes).map_err(|e| unservable(e.to_string()))
    }
}

impl ModelSource for RegistryModels {
    fn resolve(&self, name: &str, version: Option<&str>) -> Result<Arc<ServedModel>, ModelError> {
        let number = self.version_number(name, version).map_err(|e| match e {
            Error::NotFound(_) | Error::InvalidParameter(_) => {
                ModelError::Unknown(unknown_text(name, version))
            }
            other => ModelError::Unservable(other.to_string()),
        })?;
        let key = (name.to_string(), number);
        if let Some(hit) = self
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(hit.clone());
        }
        // Loading happens outside the lock; two first requests may both load, one wins.
        let served = Arc::new(ServedModel {
            name: name.to_string(),
            version: number.to_string(),
            runner: Runner::new(self.load(name, number)?, self.options),
        });
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        Ok(loaded.entry(key).or_insert(served).clone())
    }
}
