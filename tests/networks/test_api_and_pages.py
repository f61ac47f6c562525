"""The networks API and the host's Networks page on the test:/// host: the same services, JSON
refusals with a detail and nothing changed, the virsh commands shown, and the one gate."""

from django.test import Client
from django.urls import reverse

from kvmpanel.virt import network as virt_network

NEW = {"name": "t-api", "mode": "isolated", "address": "10.66.0.1", "prefix": 24, "dhcp_start": "10.66.0.10",
       "dhcp_end": "10.66.0.20"}  # fmt: skip


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def network_names(world) -> list[str]:
    return [n.name for n in virt_network.list_networks(world.host.uri)]


def test_a_network_lives_its_whole_life_through_the_api(world):
    client = client_for(world.root)
    base = reverse("host-network-list", args=[world.host.pk])
    created = client.post(base, {**NEW, "autostart": True}, content_type="application/json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["network"]["subnet"] == "10.66.0.0/24" and body["network"]["active"] and body["network"]["autostart"]
    assert "virsh net-define t-api.xml" in body["command"]

    listed = client.get(base).json()
    assert [n["name"] for n in listed] == ["isolated", "t-api"]
    assert listed[0]["mode"] == "isolated" and listed[0]["subnet"] == "192.168.250.0/24"

    url = reverse("host-network-static-hosts", args=[world.host.pk, "t-api"])
    added = client.post(url, {"mac": "52:54:00:01:02:03", "ip": "10.66.0.5", "hostname": "db"}, "application/json")
    assert added.status_code == 201 and added.json()["network"]["static_hosts"] == [
        {"mac": "52:54:00:01:02:03", "ip": "10.66.0.5", "name": "db"}
    ]
    removed = client.delete(
        reverse("host-network-static-host-detail", args=[world.host.pk, "t-api", "52:54:00:01:02:03"])
    )
    assert removed.status_code == 200 and removed.json()["network"]["static_hosts"] == []

    stopped = client.post(reverse("host-network-stop", args=[world.host.pk, "t-api"]))
    assert stopped.status_code == 200 and not stopped.json()["network"]["active"]
    assert client.post(reverse("host-network-start", args=[world.host.pk, "t-api"])).json()["network"]["active"]
    off = client.post(reverse("host-network-autostart", args=[world.host.pk, "t-api"]), {"enabled": False})
    assert off.json()["network"]["autostart"] is False and "--disable" in off.json()["command"]

    deleted = client.delete(reverse("host-network-detail", args=[world.host.pk, "t-api"]))
    assert deleted.status_code == 200 and deleted.json()["network"] is None
    assert client.get(reverse("host-network-detail", args=[world.host.pk, "t-api"])).status_code == 404
    assert network_names(world) == ["isolated"]


def test_bad_input_through_the_api_is_a_400_with_a_detail_and_changes_nothing(world):
    client = client_for(world.root)
    base = reverse("host-network-list", args=[world.host.pk])
    for values in [
        {"name": "a<b>"},
        {"name": "x" * 300},
        {"name": ["list"]},
        {"address": "10.66.0.0"},
        {"dhcp_end": "10.67.0.20"},
        {"mode": "passthrough"},
        {"prefix": "24; rm"},
    ]:
        refused = client.post(base, {**NEW, **values}, content_type="application/json")
        assert refused.status_code == 400, (values, refused.content)
        assert refused.json()["detail"]
    assert client.post(base, {**NEW, "name": "isolated"}, content_type="application/json").status_code == 409
    assert network_names(world) == ["isolated"]


def test_the_gate_hides_networks_from_strangers_and_lets_viewers_only_look(world):
    base = reverse("host-network-list", args=[world.host.pk])
    assert client_for(world.bob).get(base).status_code == 404
    assert client_for(world.bob).get(reverse("networks:list", args=[world.host.pk])).status_code == 404
    for user in (world.carol, world.oscar):
        assert client_for(user).get(base).status_code == 200
        assert client_for(user).post(base, NEW, content_type="application/json").status_code == 403
        stop = reverse("host-network-stop", args=[world.host.pk, "isolated"])
        assert client_for(user).post(stop).status_code == 403
    assert network_names(world) == ["isolated"]


def test_the_networks_page_lists_networks_with_their_virsh_commands(world):
    virt_network.define_network(
        world.host.uri,
        virt_network.build_network_xml(
            virt_network.NetworkSpec(
                name="t-nat", mode="nat", address="10.55.0.1", dhcp_start="10.55.0.9", dhcp_end="10.55.0.19"
            )
        ),
        start=False,
    )
    html = client_for(world.root).get(reverse("networks:list", args=[world.host.pk])).content.decode()
    assert 'data-network="isolated"' in html and 'data-network="t-nat"' in html
    for command in ("virsh net-destroy isolated", "virsh net-start t-nat", "virsh net-undefine t-nat"):
        assert command in html
    assert "reaches outside" in html and "Create a network" in html
    viewer_html = client_for(world.carol).get(reverse("networks:list", args=[world.host.pk])).content.decode()
    assert 'data-network="t-nat"' in viewer_html and "Create a network" not in viewer_html
    host_page = client_for(world.carol).get(reverse("hosts:detail", args=[world.host.pk])).content.decode()
    assert reverse("networks:list", args=[world.host.pk]) in host_page


def test_the_page_forms_create_and_refuse_with_a_message(world):
    client = client_for(world.root)
    url = reverse("networks:create", args=[world.host.pk])
    created = client.post(url, {**NEW, "name": "t-page"}, follow=True)
    assert "Network t-page created" in created.content.decode()
    refused = client.post(url, {**NEW, "name": "t-bad", "dhcp_start": "10.1.1.1"}, follow=True)
    assert "not a usable address" in refused.content.decode()
    refused = client.post(reverse("networks:action", args=[world.host.pk, "isolated", "delete"]), follow=True)
    assert "used by running VMs" in refused.content.decode()
    assert network_names(world) == ["isolated", "t-page"]
    assert client.post(reverse("networks:action", args=[world.host.pk, "t-page", "explode"])).status_code == 404
    assert client.get(reverse("networks:action", args=[world.host.pk, "t-page", "stop"])).status_code == 405
