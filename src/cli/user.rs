//! `aisle user add USERNAME --role ROLE`: staff accounts for the editor and the dashboard.

use std::io::{BufRead, IsTerminal};
use std::time::Duration;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};

use crate::auth::{AuthService, Role};
use crate::config::Settings;
use crate::db::Database;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a staff user. The password is read from the first line of stdin (or AISLE_PASSWORD);
    /// with neither, a random one is generated and printed once.
    Add {
        username: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Name shown to colleagues and shoppers (default: the username).
        #[arg(long, default_value = "")]
        display_name: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Agent,
    Editor,
    Admin,
}

pub async fn run(settings: Settings, cmd: UserCommand) -> anyhow::Result<()> {
    let UserCommand::Add {
        username,
        role,
        display_name,
    } = cmd;
    let role = match role {
        RoleArg::Agent => Role::Agent,
        RoleArg::Editor => Role::Editor,
        RoleArg::Admin => Role::Admin,
    };
    let (password, generated) = match std::env::var("AISLE_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ if !std::io::stdin().is_terminal() => {
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading the password from stdin")?;
            let p = line.trim_end_matches(['\n', '\r']).to_owned();
            if p.is_empty() {
                (crate::auth::random_password(), true)
            } else {
                (p, false)
            }
        }
        _ => (crate::auth::random_password(), true),
    };
    let db = Database::open(&settings)
        .await
        .context("opening the database")?;
    let auth = AuthService::new(
        db.pool.clone(),
        Duration::from_secs(settings.auth.session_ttl_secs),
    );
    let result = auth
        .create_user(&username, &display_name, role, &password)
        .await;
    db.close().await?;
    let user = result?;
    println!("created {} user {:?}", user.role.as_str(), user.username);
    if generated {
        println!("password: {password}");
    }
    Ok(())
}
