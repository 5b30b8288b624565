//! `ecs-stack-deploy package`: what a deploy does with a template's local
//! files, without deploying — parity with `aws cloudformation package`,
//! deterministic. The same checks (files inside the workspace, the bucket
//! looked at first) and the same content-addressed uploads as a deploy with
//! `s3-bucket`; the packaged template goes to a file or to stdout.

use std::path::Path;

use crate::aws::{CallTimeouts, RetryPolicy, load_config, resolve_region};
use crate::console::{Console, LogTarget};
use crate::env::Environment;
use crate::inputs::{InputErrors, RawInputs, package_inputs};
use crate::proxy::resolve_proxy;
use crate::refusal::Refusals;
use crate::stack::plan::load_package;
use crate::stack::upload::{bucket_region, plan_package, template_bucket_client, upload_package};

use super::{JobError, Outcome, report_bad_inputs};

/// Packages `template` into the bucket; writes the result to `output`
/// (relative to the workspace), or to stdout (the log then goes to stderr).
pub async fn package(raw: &RawInputs, output: Option<&Path>, env: &Environment) -> Outcome {
    let target = if output.is_some() {
        LogTarget::Stdout
    } else {
        LogTarget::Stderr
    };
    let console = Console::to(env.is_github_actions(), target);
    let workspace = env.workspace();
    let checked = {
        let _section = console.phase("Validate inputs");
        package_inputs(raw, &workspace).and_then(|inputs| {
            let tree = load_package(&inputs.template, &workspace).map_err(InputErrors::from)?;
            let region = resolve_region(inputs.region.as_deref(), env).map_err(Refusals::from)?;
            let proxy = resolve_proxy(inputs.http_proxy.as_deref(), env).map_err(Refusals::from)?;
            Ok((inputs, tree, region, proxy))
        })
    };
    let (inputs, tree, region, proxy) = match checked {
        Ok(checked) => checked,
        Err(errors) => return report_bad_inputs(&console, &errors),
    };
    let packaged = async {
        let config = load_config(
            region.clone(),
            RetryPolicy::default(),
            CallTimeouts::within(std::time::Duration::MAX),
            &proxy,
            env,
        )
        .await
        .map_err(JobError::Failed)?;
        let s3 = template_bucket_client(&config);
        let (plan, body) = {
            let _section = console.phase(&format!("Template bucket {}", inputs.upload.bucket));
            let bucket_region = bucket_region(&s3, &inputs.upload, &region).await?;
            let planned = plan_package(
                &s3,
                &tree,
                &inputs.upload,
                &bucket_region,
                config.endpoint_url(),
            )
            .await?;
            for line in planned.0.lines() {
                console.line(&line);
            }
            planned
        };
        let mut written = Vec::new();
        let uploaded = upload_package(&s3, &plan, &mut written).await;
        console.line(&format!(
            "uploaded {} of {} packaged file(s)",
            written.len(),
            plan.artifacts.len()
        ));
        uploaded.map_err(JobError::Failed)?;
        Ok::<_, JobError>(body)
    }
    .await;
    let body = match packaged {
        Ok(body) => body,
        Err(JobError::BadInput(errors)) => return report_bad_inputs(&console, &errors),
        Err(error) => {
            console.error(&error.to_string());
            return Outcome::Failed;
        }
    };
    match output {
        None => {
            print!("{body}");
            Outcome::Success
        }
        Some(path) => {
            let path = workspace.join(path);
            match std::fs::write(&path, &body) {
                Ok(()) => {
                    console.line(&format!("packaged template: {}", path.display()));
                    Outcome::Success
                }
                Err(error) => {
                    console.error(&format!("writing {}: {error}", path.display()));
                    Outcome::Failed
                }
            }
        }
    }
}
