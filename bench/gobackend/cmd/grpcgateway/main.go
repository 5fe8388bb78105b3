// Command grpcgateway is grpc-gateway v2's reverse proxy for
// meshgate.test.v1.EchoService: the benchmark's second reference beside
// Envoy's transcoder. It serves the auto-mapped POST paths (../../http_rules.yaml)
// over HTTP/1.1 and calls the backend over one gRPC connection, as the other
// contestants do. Run it with GOMAXPROCS=1 for one core.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"meshgate.bench/gobackend/echopb"
)

func main() {
	port := flag.Int("port", 8080, "HTTP port on 127.0.0.1")
	backend := flag.String("backend", "127.0.0.1:50051", "the gRPC backend")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Envoy's transcoder and meshgate leave fields at their default value out of
	// the JSON; grpc-gateway v2 prints them unless told not to. The same bytes
	// for the same reply, so every contestant does the same work.
	marshaler := &runtime.JSONPb{MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: false}}
	mux := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler))
	options := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if err := echopb.RegisterEchoServiceHandlerFromEndpoint(ctx, mux, *backend, options); err != nil {
		log.Fatalf("register: %v", err)
	}
	listener, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	server := &http.Server{Handler: mux}
	go func() {
		<-ctx.Done()
		_ = server.Close()
	}()
	fmt.Println("READY")
	if err := server.Serve(listener); err != nil && err != http.ErrServerClosed {
		log.Fatalf("serve: %v", err)
	}
}
