// The status page served at the admin listener's root: one self-contained HTML document (inline CSS and script, no
// other request than its own polling of /status and the admin API's POSTs). Its source is core/admin/status.html,
// compiled in at build time (embed_text.cmake) so that it can be edited as HTML and needs no file installed beside
// the binary.
#pragma once

#include <string_view>

namespace lb::core {

std::string_view status_page_html();

}  // namespace lb::core
