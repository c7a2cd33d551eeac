// Chunkserver rows as JSON and as a table, shared by `status` and `nodes`.
#pragma once

#include <google/protobuf/repeated_field.h>

#include <nlohmann/json.hpp>

#include "proto/meta.pb.h"

namespace dfs::ctl {

using NodeList = google::protobuf::RepeatedPtrField<pb::NodeStatus>;

nlohmann::json NodesJson(const NodeList& nodes);
void PrintNodes(const NodeList& nodes);

}  // namespace dfs::ctl
