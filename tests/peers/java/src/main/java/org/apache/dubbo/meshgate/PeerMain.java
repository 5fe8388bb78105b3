package org.apache.dubbo.meshgate;

import java.util.List;
import java.util.concurrent.CountDownLatch;

import org.apache.dubbo.config.ApplicationConfig;
import org.apache.dubbo.config.ProtocolConfig;
import org.apache.dubbo.config.RegistryConfig;
import org.apache.dubbo.config.ServiceConfig;
import org.apache.dubbo.config.bootstrap.DubboBootstrap;
import meshgate.interop.v1.Greeter;

/**
 * Starts the Java interop peer: every service twice (g1/1.0.0 and g2/2.0.0), Triple on
 * --triple-port, dubbo2/hessian2 on --dubbo-port. Prints READY once both listen.
 *
 * <p>No registry, unless MESHGATE_REGISTRY names one (zookeeper://127.0.0.1:PORT): then the peer
 * registers there with Dubbo's own registry module, in MESHGATE_REGISTER_MODE (interface,
 * instance or all; default all), under the application name MESHGATE_APPLICATION (default
 * meshgate-java-peer), and publishes its metadata to the same ZooKeeper.
 *
 * <p>With --call HOST:PORT it is a Triple consumer instead (see {@link CallMain}).
 */
public final class PeerMain {
    private static final String HOST = "127.0.0.1";

    private PeerMain() {
    }

    public static void main(String[] args) throws InterruptedException {
        if (List.of(args).contains("--call")) {
            CallMain.run(args);
            return;
        }
        int triplePort = intArg(args, "--triple-port");
        int dubboPort = intArg(args, "--dubbo-port");

        String registry = System.getenv("MESHGATE_REGISTRY");
        boolean registers = registry != null && !registry.isEmpty();
        ApplicationConfig application = new ApplicationConfig(
                envOr("MESHGATE_APPLICATION", "meshgate-java-peer"));
        // Several peers run side by side in the tests: no fixed QoS port to fight over.
        application.setQosEnable(false);

        ProtocolConfig triple = new ProtocolConfig("tri", triplePort);
        triple.setHost(HOST);
        ProtocolConfig dubbo = new ProtocolConfig("dubbo", dubboPort);
        dubbo.setHost(HOST);
        dubbo.setSerialization("hessian2");

        RegistryConfig registryConfig = new RegistryConfig(RegistryConfig.NO_AVAILABLE);
        if (registers) {
            registryConfig = new RegistryConfig(registry);
            registryConfig.setRegisterMode(envOr("MESHGATE_REGISTER_MODE", "all"));
            registryConfig.setUseAsConfigCenter(false);
            // Remote metadata: the revision's MetadataInfo goes to ZooKeeper, where a
            // consumer without a dubbo2 client of the MetadataService can read it.
            application.setMetadataType("remote");
        }

        DubboBootstrap bootstrap = DubboBootstrap.getInstance()
                .application(application)
                .registry(registryConfig)
                .protocols(List.of(triple, dubbo));
        for (String[] groupVersion : new String[][] {{"g1", "1.0.0"}, {"g2", "2.0.0"}}) {
            String group = groupVersion[0];
            String version = groupVersion[1];

            ServiceConfig<Greeter> greeter = new ServiceConfig<>();
            greeter.setInterface(Greeter.class);
            greeter.setRef(new GreeterImpl(group, version));
            greeter.setGroup(group);
            greeter.setVersion(version);
            greeter.setProtocols(List.of(triple));
            bootstrap.service(greeter);

            ServiceConfig<UserService> users = new ServiceConfig<>();
            users.setInterface(UserService.class);
            users.setRef(new UserServiceImpl(group, version));
            users.setGroup(group);
            users.setVersion(version);
            users.setProtocols(List.of(triple, dubbo));
            bootstrap.service(users);
        }
        bootstrap.start();
        System.out.println("READY");
        System.out.flush();
        new CountDownLatch(1).await();
    }

    static void sleep(int millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static String envOr(String name, String fallback) {
        String value = System.getenv(name);
        return value == null || value.isEmpty() ? fallback : value;
    }

    private static int intArg(String[] args, String name) {
        for (int i = 0; i + 1 < args.length; i++) {
            if (args[i].equals(name)) {
                return Integer.parseInt(args[i + 1]);
            }
        }
        throw new IllegalArgumentException("missing " + name + " <port>");
    }
}
