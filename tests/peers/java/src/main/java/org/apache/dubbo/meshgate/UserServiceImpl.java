package org.apache.dubbo.meshgate;

import java.util.ArrayList;
import java.util.Date;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** One UserService provider; `label` ("java g1/1.0.0") tells callers which one answered. */
public class UserServiceImpl implements UserService {
    /** 2023-11-14T22:13:20Z; users' creation dates are offsets from it so answers are stable. */
    static final long EPOCH_MILLIS = 1_700_000_000_000L;

    private final String label;
    private final String group;
    private final String version;

    public UserServiceImpl(String group, String version) {
        this.group = group;
        this.version = version;
        this.label = "java " + group + "/" + version;
    }

    @Override
    public String echo(String text) {
        return text + " [" + label + "]";
    }

    @Override
    public int add(int a, int b) {
        return a + b;
    }

    @Override
    public User getUser(long id) {
        List<String> tags = new ArrayList<>(List.of(group, "user-" + id));
        Map<String, String> attrs = new LinkedHashMap<>();
        attrs.put("peer", "java");
        attrs.put("group", group);
        attrs.put("version", version);
        return new User(id, "user-" + id, tags, attrs, new Date(EPOCH_MILLIS + id * 1000L));
    }

    @Override
    public User createUser(User user) {
        List<String> tags = new ArrayList<>(user.getTags() == null ? List.of() : user.getTags());
        tags.add("created");
        Map<String, String> attrs = new LinkedHashMap<>();
        if (user.getAttrs() != null) {
            attrs.putAll(user.getAttrs());
        }
        attrs.put("served_by", label);
        Date created = user.getCreated() == null ? new Date(EPOCH_MILLIS) : user.getCreated();
        return new User(user.getId(), user.getName(), tags, attrs, created);
    }

    @Override
    public String greet(String name) {
        return "hello " + name;
    }

    @Override
    public String greet(String name, int times) {
        return "hello " + name + " x" + times;
    }

    @Override
    public List<User> listUsers(List<Long> ids) {
        List<User> users = new ArrayList<>();
        for (Long id : ids) {
            users.add(getUser(id));
        }
        return users;
    }

    @Override
    public void fail(String message) {
        throw new UserServiceException(message);
    }

    @Override
    public String slow(int millis) {
        PeerMain.sleep(millis);
        return "slept " + millis + "ms";
    }
}
