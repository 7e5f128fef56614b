use traptor_firehose::generate::*;
fn main() {
    let mut g = TweetGenerator::new(1, GeneratorOptions::default());
    let mut v: Vec<Vec<u8>> = (0..2000).map(|_| g.tweet_json(&Plant::default())).collect();
    v.sort_by_key(|t| t.len());
    let user = User::for_id(123456789);
    println!("user {}", user.json.len());
    println!("{}", String::from_utf8_lossy(&v[1900]));
}
