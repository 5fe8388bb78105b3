package org.apache.dubbo.meshgate;

import java.io.Serializable;
import java.util.Date;
import java.util.List;
import java.util.Map;

/** The POJO of the contract; its class name is what hessian2 puts on the wire. */
public class User implements Serializable {
    private static final long serialVersionUID = 1L;

    private long id;
    private String name;
    private List<String> tags;
    private Map<String, String> attrs;
    private Date created;

    public User() {
    }

    public User(long id, String name, List<String> tags, Map<String, String> attrs, Date created) {
        this.id = id;
        this.name = name;
        this.tags = tags;
        this.attrs = attrs;
        this.created = created;
    }

    public long getId() {
        return id;
    }

    public void setId(long id) {
        this.id = id;
    }

    public String getName() {
        return name;
    }

    public void setName(String name) {
        this.name = name;
    }

    public List<String> getTags() {
        return tags;
    }

    public void setTags(List<String> tags) {
        this.tags = tags;
    }

    public Map<String, String> getAttrs() {
        return attrs;
    }

    public void setAttrs(Map<String, String> attrs) {
        this.attrs = attrs;
    }

    public Date getCreated() {
        return created;
    }

    public void setCreated(Date created) {
        this.created = created;
    }
}
