//! Print the protocol's DBC file: `cargo run -p melv-can --example dbc > crates/can/melv.dbc`.
fn main() {
    print!("{}", melv_can::dbc::generate());
}
