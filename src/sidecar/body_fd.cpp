#include "sidecar/body_fd.hpp"

#include "wire/payload_fd.hpp"

namespace asya::sidecar {

std::unique_ptr<BodyFileRequest> body_file_request(const transport::DeliveryBody& body,
                                                   std::string_view payload_raw) {
  if (body.file_fd() < 0 || payload_raw.size() < kBodyFdMinPayloadBytes) return nullptr;
  const std::string_view text = body.view();
  // The value exactly, without blanks the parser may have left around it.
  while (!payload_raw.empty() && (payload_raw.back() == ' ' || payload_raw.back() == '\n' ||
                                  payload_raw.back() == '\r' || payload_raw.back() == '\t'))
    payload_raw.remove_suffix(1);
  if (payload_raw.data() < text.data() ||
      payload_raw.data() + payload_raw.size() > text.data() + text.size())
    return nullptr;
  const auto at = static_cast<std::uint64_t>(payload_raw.data() - text.data());
  auto form =
      wire::payload_fd_request(text, payload_raw, body.file_offset() + at, payload_raw.size());
  if (!form) return nullptr;
  auto out = std::make_unique<BodyFileRequest>();
  out->fd_form.text = std::move(*form);
  out->fd_form.fd = body.file_fd();
  out->request.size = text.size();
  out->request.write_body = [text](const wire::StreamedRequest::Sink& sink) { return sink(text); };
  out->request.payload_fd = &out->fd_form;
  return out;
}

}  // namespace asya::sidecar
