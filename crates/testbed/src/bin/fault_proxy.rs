//! `fault-proxy --listen 127.0.0.1:0 --upstream http://127.0.0.1:5000 --flavor aws|vault`:
//! runs the fault-injecting proxy until killed, printing `listening on http://ADDR`.

use std::net::SocketAddr;

use testbed::proxy::Flavor;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut listen: SocketAddr = "127.0.0.1:0".parse().expect("static address");
    let mut upstream = None;
    let mut flavor = Flavor::Aws;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--listen", Some(v)) => match v.parse() {
                Ok(addr) => listen = addr,
                Err(err) => return fail(&format!("--listen {v}: {err}")),
            },
            ("--upstream", Some(v)) => upstream = Some(v),
            ("--flavor", Some(v)) if v == "aws" => flavor = Flavor::Aws,
            ("--flavor", Some(v)) if v == "vault" => flavor = Flavor::Vault,
            _ => {
                return fail(&format!(
                    "unknown argument `{arg}`; usage: fault-proxy --upstream URL [--listen ADDR] [--flavor aws|vault]"
                ));
            }
        }
    }
    let Some(upstream) = upstream else {
        return fail("--upstream is required");
    };
    match testbed::proxy::start(listen, &upstream, flavor).await {
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
    let _ = std::io::Write::write_all(&mut std::io::stderr(), format!("fault-proxy: {message}\n").as_bytes());
    std::process::ExitCode::from(2)
}
