//! Registered model versions as Open Inference Protocol models inside `cairn server`: the OIP
//! model name is the registered model's name, the OIP version its number or an alias.
use crate::artifacts::proxied_root;
use crate::oip::{unknown_text, ModelError, ModelSource, ServedModel};
use cairn_core::model::ModelVersion;
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
        let bytes = onnx_bytes(self.artifacts.as_ref(), &version)
            .map_err(unservable)?
            .ok_or_else(|| unservable(format!("no .onnx file in {}", version.storage_location)))?;
        OnnxModel::from_bytes(&bytes).map_err(|e| unservable(e.to_string()))
    }
}

/// The one `.onnx` file among a version's files: `None` when there is none (a model of
/// another flavor), an error when the files cannot be read or hold several.
fn onnx_bytes(
    artifacts: &dyn ArtifactStore,
    version: &ModelVersion,
) -> Result<Option<Vec<u8>>, String> {
    let root = proxied_root(&version.storage_location).ok_or_else(|| {
        format!(
            "its files are not in Cairn's artifact store ({})",
            version.storage_location
        )
    })?;
    let dir = ArtifactPath::parse(&root).map_err(|e| e.to_string())?;
    let onnx: Vec<String> = artifacts
        .list(&dir)
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|e| !e.is_dir && e.path.ends_with(".onnx"))
        .map(|e| e.path)
        .collect();
    let file = match onnx.as_slice() {
        [one] => one.clone(),
        [] => return Ok(None),
        _ => {
            return Err(format!(
                "several .onnx files in {}",
                version.storage_location
            ))
        }
    };
    let path = dir.join(&ArtifactPath::parse(&file).map_err(|e| e.to_string())?);
    let (mut reader, size) = artifacts.open(&path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::with_capacity(size as usize);
    reader.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    Ok(Some(bytes))
}

/// The version tag that holds an ONNX version's signature (inputs and outputs, as JSON).
pub const SIGNATURE_TAG: &str = "cairn.signature";

/// Checks a newly registered version: an ONNX graph that cannot be loaded is refused (the
/// error names the operator); one that loads has its signature stored as the
/// [`SIGNATURE_TAG`] tag. Versions without an `.onnx` file, or whose files live outside
/// Cairn's artifact store, are left as they are.
pub(crate) fn check_new_version(
    registry: &Registry,
    artifacts: &dyn ArtifactStore,
    version: &ModelVersion,
) -> Result<(), Error> {
    if proxied_root(&version.storage_location).is_none() {
        return Ok(());
    }
    let bytes = match onnx_bytes(artifacts, version) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(()),
        Err(why) => return Err(Error::InvalidParameter(why)),
    };
    let model = OnnxModel::from_bytes(&bytes).map_err(|e| {
        Error::InvalidParameter(format!(
            "model '{}' version {} cannot be served: {e}",
            version.name, version.version
        ))
    })?;
    let sig = model.signature();
    let signature = serde_json::json!({
        "inputs": sig.inputs.iter().map(crate::oip::spec_json).collect::<Vec<_>>(),
        "outputs": sig.outputs.iter().map(crate::oip::spec_json).collect::<Vec<_>>(),
    })
    .to_string();
    // Very wide models would exceed the tag value limit: their signature stays in the graph.
    if signature.len() <= 5000 {
        registry.set_version_tag(&version.name, version.version, SIGNATURE_TAG, &signature)?;
    }
    Ok(())
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
