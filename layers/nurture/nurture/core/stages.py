"""The stages a lead moves through: fit grades, Gartner buying stages, lifecycle stages."""

FIT_GRADES = ("A", "B", "C", "D")
BUYING_STAGES = (
    "problem_identification",
    "solution_exploration",
    "requirements_building",
    "supplier_selection",
    "validation",
    "consensus_creation",
)
LIFECYCLE_STAGES = (
    "visitor",
    "subscriber",
    "lead",
    "warm",
    "hot",
    "opportunity",
    "customer",
    "recycled",
    "disqualified",
    "dormant",
    "lost",
)
