// NetworkPolicy <name>-egress of an actor with spec.isolation.network none: what its pods may
// reach (DNS, the broker's ports, the gateway). Declared in render_parts.hpp.
#include <boost/json.hpp>

#include "k8s/render_parts.hpp"

namespace asya::k8s::render_detail {

// spec.isolation.network none on Kubernetes: the runtime container shares the pod's network
// namespace with the sidecar, so what can be enforced is the pod's egress: DNS (kube-dns), the
// broker's ports (at broker_cidrs / pods with broker_pod_labels when given) and the gateway.
// Ingress is left alone (probes and metrics scraping).
json::object egress_policy(const manifest::Actor& a, std::string_view transport,
                           const RenderOptions& o, const std::string& gateway_url,
                           const json::object& labels) {
  json::array egress;
  egress.push_back(
      {{"to", json::array{{{"namespaceSelector", json::object{}},
                           {"podSelector", {{"matchLabels", {{"k8s-app", "kube-dns"}}}}}}}},
       {"ports",
        json::array{{{"protocol", "UDP"}, {"port", 53}}, {{"protocol", "TCP"}, {"port", 53}}}}});
  json::object broker;
  if (transport == "rabbitmq") {
    broker["ports"] = tcp_ports({5672, 5671});
  } else {
    int endpoint_port = o.sqs_endpoint.empty() ? 443 : url_port(o.sqs_endpoint);
    broker["ports"] = endpoint_port == 443 ? tcp_ports({443}) : tcp_ports({443, endpoint_port});
  }
  json::array peers;
  for (const auto& cidr : o.broker_cidrs)
    peers.push_back(json::object{{"ipBlock", {{"cidr", cidr}}}});
  if (!o.broker_pod_labels.empty()) {
    json::object match;
    for (const auto& [key, value] : o.broker_pod_labels) match[key] = value;
    peers.push_back(
        {{"namespaceSelector", json::object{}}, {"podSelector", {{"matchLabels", match}}}});
  }
  if (!peers.empty()) broker["to"] = std::move(peers);
  egress.push_back(std::move(broker));
  if (!gateway_url.empty()) {
    if (o.gateway_url.empty()) {
      // The rendered gateway: its pods, on their port.
      egress.push_back(
          {{"to", json::array{{{"podSelector",
                                {{"matchLabels", {{"app.kubernetes.io/name", kGatewayName}}}}}}}},
           {"ports", tcp_ports({kGatewayPort})}});
    } else {
      egress.push_back(json::object{{"ports", tcp_ports({url_port(gateway_url)})}});
    }
  }
  auto policy =
      object("networking.k8s.io/v1", "NetworkPolicy", metadata(a.name + "-egress", o, labels));
  policy["spec"] = {{"podSelector", {{"matchLabels", {{"asya.sh/actor", a.name}}}}},
                    {"policyTypes", json::array{"Egress"}},
                    {"egress", std::move(egress)}};
  return policy;
}

}  // namespace asya::k8s::render_detail
