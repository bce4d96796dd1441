//! `wps token`: mint a client access URL.

use crate::args::{Connection, TokenArgs};
use crate::{connect, Failure};

pub fn run(conn: &Connection, args: &TokenArgs) -> Result<(), Failure> {
    println!("{}", connect::mint_url(conn, &args.groups)?);
    Ok(())
}
