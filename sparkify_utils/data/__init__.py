"""Raw event log → validated clean events, the churn label and the EDA aggregations."""
