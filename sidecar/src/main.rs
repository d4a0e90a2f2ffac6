fn main() {
    eprintln!("audit-trail: not implemented yet");
    std::process::exit(1);
}
