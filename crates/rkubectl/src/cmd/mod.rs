//! One module per verb group; `dispatch` routes a parsed command to it.

pub mod auth;
pub mod backup;
pub mod certificate;
pub mod cluster;
pub mod config;
pub mod describe;
pub mod drain;
pub mod edit;
pub mod events;
pub mod explain;
pub mod generate;
pub mod get;
pub mod image;
pub mod info;
pub mod logs;
pub mod misc;
pub mod ops;
pub mod portforward;
pub mod rollout;
pub mod rollout_pause;
pub mod set;
pub mod stream;
pub mod top;
pub mod write;

use crate::cli::{Command, SetCommand};
use crate::ctx::Ctx;
use crate::error::Result;

/// Runs one verb.
pub fn dispatch(ctx: &mut Ctx, cmd: Command) -> Result<()> {
    match cmd {
        Command::Get(a) => get::run(ctx, a),
        Command::Describe(a) => describe::run(ctx, a),
        Command::Create(a) => write::create(ctx, a),
        Command::Apply(a) => write::apply(ctx, a),
        Command::Replace(a) => write::replace(ctx, a),
        Command::Edit(a) => edit::edit(ctx, a),
        Command::Diff(a) => edit::diff(ctx, a),
        Command::Backup(a) => backup::backup(ctx, a),
        Command::Restore(a) => backup::restore(ctx, a),
        Command::Delete(a) => write::delete(ctx, a),
        Command::Patch(a) => write::patch(ctx, a),
        Command::Run(a) => ops::run_pod(ctx, a),
        Command::Expose(a) => ops::expose(ctx, a),
        Command::Scale(a) => ops::scale(ctx, a),
        Command::Label(a) => ops::label_or_annotate(ctx, a, "labels"),
        Command::Annotate(a) => ops::label_or_annotate(ctx, a, "annotations"),
        Command::Taint(a) => ops::taint(ctx, a),
        Command::Cordon(a) => ops::cordon(ctx, a, true),
        Command::Uncordon(a) => ops::cordon(ctx, a, false),
        Command::Set(SetCommand::Image(a)) => ops::set_image(ctx, a),
        Command::Set(c) => set::run(ctx, c),
        Command::Certificate(c) => certificate::run(ctx, c),
        Command::Events(a) => events::run(ctx, a),
        Command::Rollout(c) => rollout::run(ctx, c),
        Command::Wait(a) => rollout::wait(ctx, a),
        Command::Logs(a) => logs::run(ctx, a),
        Command::Config(c) => config::run(ctx, c),
        Command::ApiResources(a) => info::api_resources(ctx, a),
        Command::ApiVersions => info::api_versions(ctx),
        Command::Version(a) => info::version(ctx, a),
        Command::ClusterInfo => info::cluster_info(ctx),
        Command::Explain(a) => explain::run(ctx, a),
        Command::Cluster(c) => cluster::run(ctx, c),
        Command::Image(c) => image::run(ctx, c),
        Command::Exec(a) => stream::exec(ctx, a),
        Command::Attach(a) => stream::attach(ctx, a),
        Command::Cp(a) => stream::cp(ctx, a),
        Command::PortForward(a) => portforward::run(ctx, a),
        Command::Top(c) => top::run(ctx, c),
        Command::Drain(a) => drain::run(ctx, a),
        Command::Auth(c) => auth::run(ctx, c),
        Command::Autoscale(a) => misc::autoscale(ctx, a),
        Command::Completion(a) => misc::completion(ctx, a),
    }
}
