//! `vault-emulator --listen 127.0.0.1:0 --root-token T`: runs the Vault API emulator until
//! killed, printing `listening on http://ADDR` once it accepts connections.

use std::net::SocketAddr;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut listen: SocketAddr = "127.0.0.1:0".parse().expect("static address");
    let mut root_token = "root".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(v)) => match v.parse() {
                Ok(addr) => listen = addr,
                Err(err) => return fail(&format!("--listen {v}: {err}")),
            },
            ("--root-token", Some(v)) => root_token = v,
            _ => {
                return fail(&format!(
                    "unknown argument `{arg}`; usage: vault-emulator [--listen ADDR] [--root-token TOKEN]"
                ));
            }
        }
    }
    match testbed::vault::start(listen, &root_token).await {
        Ok(running) => {
            let _ = std::io::Write::write_all(
                &mut std::io::stdout(),
                format!("listening on http://{}\n", running.addr).as_bytes(),
            );
            let _ = tokio::signal::ctrl_c().await;
            std::process::ExitCode::SUCCESS
        }
        Err(err) => fail(&format!("cannot listen on {listen}: {err}")),
    }
}

fn fail(message: &str) -> std::process::ExitCode {
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("vault-emulator: {message}\n").as_bytes(),
    );
    std::process::ExitCode::from(2)
}
