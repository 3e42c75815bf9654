// A C++ gRPC peer for the load benchmark: the "C++ gRPC doing trivial work" reference of issue 5.
// Async API, one ServerCompletionQueue polled by one thread (the caller of main), the classic CallData state machine
// for one unary method. The handler ignores the request and answers a DecideResponse built once at startup, shaped
// like offerd's 1-scope answer (one proposition, three scored items), so what is measured is the gRPC stack.
//
//   decide_server --port N
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "offerd/v1/decisioning.grpc.pb.h"

namespace {

using offerd::v1::DecideRequest;
using offerd::v1::DecideResponse;
using offerd::v1::Decisioning;

// Calls requested ahead of time: h2load runs 16 connections x 32 streams, so every arriving stream finds a posted
// request instead of waiting in grpc core's queue of unmatched calls.
constexpr int kPostedCalls = 1024;

DecideResponse MakeFixedResponse() {
    DecideResponse response;
    response.set_request_id("5f0c6e2a-8d41-4b7e-9a3c-2e1f7b9d4c60");
    response.set_profile_found(true);
    response.set_catalog_version("bench-1");
    response.set_snapshot_version("bench-1000000");
    auto* proposition = response.add_propositions();
    proposition->set_proposition_id("c2b7f82d-9d3e-41d2-92a6-b88198a953ce");
    proposition->set_decision_id("dec-bench");
    proposition->set_placement_id("web-banner");
    proposition->set_outcome(offerd::v1::OUTCOME_OFFERS);
    const struct { const char* id; double score; } items[] = {{"offer-74", 100}, {"offer-42", 90}, {"offer-6", 80}};
    for (const auto& fixed : items) {
        auto* item = proposition->add_items();
        item->set_id(fixed.id);
        item->set_score(fixed.score);
    }
    return response;
}

// One call's life: posted (waiting for a client), answered (Finish queued), done (freed). A new CallData is posted
// as soon as one is taken, so kPostedCalls stay posted.
class CallData {
public:
    CallData(Decisioning::AsyncService* service, grpc::ServerCompletionQueue* queue, const DecideResponse* fixed)
        : service_(service), queue_(queue), fixed_(fixed), responder_(&context_) {
        service_->RequestDecide(&context_, &request_, &responder_, queue_, queue_, this);
    }

    void Proceed(bool ok) {
        if (state_ == State::posted) {
            if (!ok) {  // the server is shutting down
                delete this;
                return;
            }
            new CallData(service_, queue_, fixed_);
            state_ = State::answered;
            responder_.Finish(*fixed_, grpc::Status::OK, this);
        } else {
            delete this;
        }
    }

private:
    enum class State { posted, answered };

    Decisioning::AsyncService* service_;
    grpc::ServerCompletionQueue* queue_;
    const DecideResponse* fixed_;
    grpc::ServerContext context_;
    DecideRequest request_;
    grpc::ServerAsyncResponseWriter<DecideResponse> responder_;
    State state_ = State::posted;
};

int ParsePort(int argc, char** argv) {
    if (argc == 3 && std::strcmp(argv[1], "--port") == 0) {
        char* end = nullptr;
        long port = std::strtol(argv[2], &end, 10);
        if (end != argv[2] && *end == '\0' && port > 0 && port < 65536) return static_cast<int>(port);
    }
    std::fprintf(stderr, "usage: %s --port N\n", argv[0]);
    std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
    const int port = ParsePort(argc, argv);
    const DecideResponse fixed = MakeFixedResponse();

    Decisioning::AsyncService service;
    grpc::ServerBuilder builder;
    int bound_port = 0;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port), grpc::InsecureServerCredentials(), &bound_port);
    builder.RegisterService(&service);
    // Well above h2load's -m 32 (and -m 64 in the open-loop rounds) so the client's stream count is the limit.
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 1000);
    std::unique_ptr<grpc::ServerCompletionQueue> queue = builder.AddCompletionQueue();
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server || bound_port == 0) {
        std::fprintf(stderr, "cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    std::fprintf(stderr, "decide_server on 127.0.0.1:%d, response %zu bytes\n", bound_port, fixed.ByteSizeLong());

    for (int i = 0; i < kPostedCalls; ++i) new CallData(&service, queue.get(), &fixed);
    void* tag = nullptr;
    bool ok = false;
    while (queue->Next(&tag, &ok)) static_cast<CallData*>(tag)->Proceed(ok);
    return 0;
}
