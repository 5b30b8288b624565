//! The command-line front end. Flags are generated from the same input table
//! as the action (`--parameter-overrides` is `INPUT_PARAMETER-OVERRIDES`), so
//! the two can never drift apart, and both feed the same validation.

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::env::Environment;
use crate::inputs::{DEPLOY_INPUTS, RawInputs};

/// What the user asked for.
#[derive(Debug)]
pub enum Invocation {
    /// Run as a GitHub Action: inputs come from `INPUT_*` variables.
    Action(RawInputs),
    /// `ecs-stack-deploy deploy --name ...`.
    Deploy(RawInputs),
    /// `ecs-stack-deploy lint-workflows [dir]`.
    LintWorkflows(std::path::PathBuf),
    /// `ecs-stack-deploy init-stacks DIR [--output FILE]`.
    InitStacks {
        dir: std::path::PathBuf,
        output: Option<std::path::PathBuf>,
    },
    /// `ecs-stack-deploy package --template ... --s3-bucket ...`.
    Package {
        raw: RawInputs,
        output: Option<std::path::PathBuf>,
    },
}

/// The inputs `package` takes, as the deploy spells them.
const PACKAGE_FLAGS: &[&str] = &[
    "template",
    "s3-bucket",
    "s3-prefix",
    "aws-region",
    "http-proxy",
];

/// The inputs `continue` passes on as they are.
const CONTINUE_FLAGS: &[&str] = &[
    "service",
    "cluster",
    "wait-until",
    "wait-for-minutes",
    "aws-region",
];

/// Whether an input is a boolean (its default is `true` or `false`); those
/// become flags that may be given bare (`--disable-rollback`).
fn is_boolean(default: Option<&str>) -> bool {
    matches!(default, Some("true" | "false"))
}

/// A subcommand taking every deploy input as a flag.
fn with_deploy_flags(command: Command) -> Command {
    DEPLOY_INPUTS.iter().fold(command, |command, spec| {
        let mut arg = Arg::new(spec.name).long(spec.name).action(ArgAction::Set);
        if is_boolean(spec.default) {
            arg = arg
                .num_args(0..=1)
                .default_missing_value("true")
                .value_name("BOOL");
        }
        if let Some(default) = spec.default {
            arg = arg.help(format!("default: {default}"));
        }
        command.arg(arg)
    })
}

fn command() -> Command {
    let deploy = with_deploy_flags(
        Command::new("deploy")
            .about("Create or update a CloudFormation stack through a change set"),
    );
    let verify = with_deploy_flags(Command::new("verify").about(
        "Plan a deploy and run every check before deploying (verify-only): nothing is changed",
    ));
    let destroy = with_deploy_flags(Command::new("destroy").about(
        "Delete the stacks of a system (--stacks MANIFEST), each after the stacks that depend on it; stacks with termination protection are refused before anything is deleted",
    ));
    Command::new("ecs-stack-deploy")
        .version(env!("CARGO_PKG_VERSION"))
        .about("Deploy CloudFormation stacks through change sets. Without a subcommand, runs as a GitHub Action reading INPUT_* variables.")
        .subcommand(deploy)
        .subcommand(verify)
        .subcommand(destroy)
        .subcommand(
            CONTINUE_FLAGS.iter().fold(
                Command::new("continue")
                    .about("Answer the hook a paused ECS deployment waits at (ContinueServiceDeployment), then follow the deployment")
                    .arg(
                        Arg::new("rollback")
                            .long("rollback")
                            .action(ArgAction::SetTrue)
                            .help("roll the deployment back instead of letting it go on"),
                    ),
                |command, name| command.arg(Arg::new(*name).long(*name).action(ArgAction::Set)),
            ),
        )
        .subcommand(
            PACKAGE_FLAGS.iter().fold(
                Command::new("package")
                    .about("Upload the local files a template names (nested templates, code, AWS::Include snippets) to S3 and write the template rewritten to point at them, as `aws cloudformation package` does, deterministically; nothing is deployed")
                    .arg(
                        Arg::new("output-template-file")
                            .long("output-template-file")
                            .help("where to write the packaged template (relative to the workspace); default: stdout"),
                    ),
                |command, name| command.arg(Arg::new(*name).long(*name).action(ArgAction::Set)),
            ),
        )
        .subcommand(
            Command::new("init-stacks")
                .about("Write a starting system manifest (for --stacks) for a folder of templates: one stack per template, ordered by their exports and imports, parameters without defaults to fill in")
                .arg(Arg::new("dir").required(true).help("the folder of templates"))
                .arg(
                    Arg::new("output")
                        .long("output")
                        .help("where to write the manifest (relative to the workspace); default: stdout"),
                ),
        )
        .subcommand(
            Command::new("lint-workflows")
                .about("Check workflow_run chains: upstream names that match no workflow, missing conclusion checks, fork code run with secrets, image tags from github.sha")
                .arg(
                    Arg::new("dir")
                        .default_value(".github/workflows")
                        .help("the folder of workflow files"),
                ),
        )
}

fn raw_from_matches(matches: &ArgMatches) -> RawInputs {
    let mut raw = RawInputs::default();
    for spec in DEPLOY_INPUTS {
        if let Some(value) = matches.get_one::<String>(spec.name) {
            raw.set(spec.name, value);
        }
    }
    raw
}

/// Parses the command line; `Err` carries clap's own message and exit code
/// (help, version, unknown flag).
pub fn parse<I, T>(args: I, env: &Environment) -> Result<Invocation, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    Ok(match matches.subcommand() {
        Some(("deploy", deploy)) => Invocation::Deploy(raw_from_matches(deploy)),
        Some(("verify", verify)) => {
            let mut raw = raw_from_matches(verify);
            raw.set("verify-only", "true");
            Invocation::Deploy(raw)
        }
        Some(("destroy", destroy)) => {
            let mut raw = raw_from_matches(destroy);
            raw.set("mode", "destroy");
            Invocation::Deploy(raw)
        }
        Some(("continue", paused)) => {
            let mut raw = RawInputs::default();
            for name in CONTINUE_FLAGS {
                if let Some(value) = paused.get_one::<String>(name) {
                    raw.set(name, value);
                }
            }
            let answer = if paused.get_flag("rollback") {
                "rollback"
            } else {
                "true"
            };
            raw.set("continue-deployment", answer);
            Invocation::Deploy(raw)
        }
        Some(("package", package)) => {
            let mut raw = RawInputs::default();
            for name in PACKAGE_FLAGS {
                if let Some(value) = package.get_one::<String>(name) {
                    raw.set(name, value);
                }
            }
            Invocation::Package {
                raw,
                output: package
                    .get_one::<String>("output-template-file")
                    .map(std::path::PathBuf::from),
            }
        }
        Some(("init-stacks", init)) => Invocation::InitStacks {
            dir: init
                .get_one::<String>("dir")
                .map(std::path::PathBuf::from)
                .unwrap_or_default(),
            output: init
                .get_one::<String>("output")
                .map(std::path::PathBuf::from),
        },
        Some(("lint-workflows", lint)) => Invocation::LintWorkflows(
            lint.get_one::<String>("dir")
                .map(std::path::PathBuf::from)
                .unwrap_or_default(),
        ),
        _ => Invocation::Action(RawInputs::from_action_environment(env)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_answers_a_paused_deployment() {
        let parsed = |args: &[&str]| {
            let mut all = vec!["ecs-stack-deploy", "continue"];
            all.extend_from_slice(args);
            match parse(all, &Environment::default()) {
                Ok(Invocation::Deploy(raw)) => raw,
                other => panic!("{other:?}"),
            }
        };
        let mut expected = RawInputs::default();
        expected.set("service", "web");
        expected.set("cluster", "prod");
        expected.set("continue-deployment", "true");
        assert_eq!(parsed(&["--service", "web", "--cluster", "prod"]), expected);
        expected.set("continue-deployment", "rollback");
        assert_eq!(
            parsed(&["--service", "web", "--cluster", "prod", "--rollback"]),
            expected
        );
    }

    #[test]
    fn flags_map_onto_the_action_input_names() {
        let invocation = parse(
            [
                "ecs-stack-deploy",
                "deploy",
                "--name",
                "web",
                "--template",
                "t.yml",
                "--no-execute-changeset",
                "--disable-rollback=false",
                "--parameter-overrides",
                "A=1,B=\"x,y\"",
                "--http-proxy",
                "http://proxy.example.com:3128",
            ],
            &Environment::default(),
        )
        .unwrap();
        let Invocation::Deploy(raw) = invocation else {
            panic!("expected deploy");
        };
        let mut expected = RawInputs::default();
        expected.set("name", "web");
        expected.set("template", "t.yml");
        expected.set("no-execute-changeset", "true");
        expected.set("disable-rollback", "false");
        expected.set("parameter-overrides", "A=1,B=\"x,y\"");
        expected.set("http-proxy", "http://proxy.example.com:3128");
        assert_eq!(format!("{raw:?}"), format!("{expected:?}"));
    }

    #[test]
    fn no_subcommand_reads_the_action_environment() {
        let env = Environment::from_pairs([("INPUT_NAME", "web")]);
        let invocation = parse(["ecs-stack-deploy"], &env).unwrap();
        let Invocation::Action(raw) = invocation else {
            panic!("expected action mode");
        };
        let mut expected = RawInputs::default();
        expected.set("name", "web");
        assert_eq!(format!("{raw:?}"), format!("{expected:?}"));
    }

    #[test]
    fn unknown_flags_are_rejected() {
        assert!(
            parse(
                ["ecs-stack-deploy", "deploy", "--nmae", "x"],
                &Environment::default()
            )
            .is_err()
        );
    }
}
