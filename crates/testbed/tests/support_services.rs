//! Test support against the running testbed (brought up by `Services::get` if needed).

use testbed::support::Services;

#[tokio::test]
async fn each_test_gets_its_own_account_and_organization() {
    let services = Services::get();
    let (a, b) = (services.aws_account().await, services.aws_account().await);
    assert_ne!(a.account_id, b.account_id);
    let (org_a, org_b) = (services.aws_organization(&a).await, services.aws_organization(&b).await);
    assert_eq!(org_a["MasterAccountId"], a.account_id.as_str(), "{org_a}");
    assert_eq!(org_b["MasterAccountId"], b.account_id.as_str(), "{org_b}");
    assert_ne!(org_a["Id"], org_b["Id"], "two independent organizations");
    let accounts = services
        .aws_json(
            &a,
            "organizations",
            "AWSOrganizationsV20161128.ListAccounts",
            &serde_json::json!({}),
        )
        .await;
    let ids: Vec<&str> = accounts["Accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["Id"].as_str())
        .collect();
    assert_eq!(
        ids,
        [a.account_id.as_str()],
        "an organization sees only its own accounts"
    );
}

#[tokio::test]
async fn each_test_gets_its_own_vault_mount() {
    let services = Services::get();
    let (m1, m2) = (services.vault_mount(2).await, services.vault_mount(1).await);
    assert_ne!(m1, m2);
    let (status, body) = services
        .vault_call(
            "GET",
            &services.vault_addr,
            &format!("sys/internal/ui/mounts/{m2}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["options"]["version"], "1");
    let (status, _) = services
        .vault_call(
            "POST",
            &services.vault_addr,
            &format!("{m1}/data/x"),
            Some(serde_json::json!({ "data": { "a": 1 } })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = services
        .vault_call("LIST", &services.vault_addr, &format!("{m1}/metadata"), None)
        .await;
    assert_eq!(status, 200);
}
